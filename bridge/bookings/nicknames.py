"""Given names and their nicknames, both directions, for patient matching.

Each line of :data:`TABLE` is one group (indented lines continue it): a
formal given name, a colon, and the short forms and variants people book
under. Two names are nickname
relations when they share a group, so the table works in both directions
("Bob" finds "Robert", "Robert" finds "Bob") and between two nicknames of
the same name ("Bill" and "Will" are both William). A name may sit in
several groups ("Al" is Albert, Alfred and Alan; "Sam" is Samuel and
Samantha) without making those groups one: Samuel and Samantha are not
relations of each other.

A nickname relation is only ever *evidence for a near match*: the matcher
routes it to the front desk (``near_match``), it never matches on it. So
the table may be generous; a wrong relation costs a person a look, never a
wrong patient. Names are compared after :func:`bridge.bookings.normalize.name_key`
(case, accents, punctuation and spaces removed), so "José" and "Jose" are
one entry, and "Mary Ann" is "maryann".

The groups are English-language given names (United States, United
Kingdom, Ireland, Australia) plus the common Spanish, Italian, German and
French hypocorisms seen at US and European front desks.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

from bridge.bookings.normalize import name_key

TABLE = """
Abigail: Abby, Abbie, Gail
Abraham: Abe, Bram
Adelaide: Addie, Adele, Heidi
Adrian: Ade
Agnes: Aggie, Nessa, Nessie
Albert: Al, Bert, Bertie
Alberto: Beto, Tito
Alexander: Alex, Alec, Al, Sandy, Xander, Lex, Sasha, Alejandro
Alexandra: Alex, Alexa, Allie, Sandra, Sandy, Lexi, Sasha, Alejandra
Alexis: Alex, Lexi
Alfred: Al, Alf, Alfie, Fred, Freddie
Alan: Al
Alice: Allie, Ally, Alicia
Alison: Allie, Ally
Allison: Allie, Ally
Amanda: Mandy, Manda
Amelia: Millie, Mia, Amy
Andrew: Andy, Drew, Andre, Andres
Angela: Angie, Angel
Anne: Annie, Nan, Nancy, Anna, Ann, Hannah
Annabelle: Anna, Annie, Belle, Bella
Anthony: Tony, Ant, Antonio, Anton
Antonio: Tony, Toni, Nino
Archibald: Archie
Arnold: Arnie
Arthur: Art, Artie
Augustus: Gus, Gussie, August
Barbara: Barb, Barbie, Babs, Bobbie
Barnabas: Barney
Bartholomew: Bart
Beatrice: Bea, Trixie, Beatriz
Benjamin: Ben, Benny, Benji
Bernard: Bernie, Bernardo
Bertram: Bert
Beverly: Bev
Bradley: Brad
Brian: Bri
Bridget: Bridie, Biddy, Brigid
Calvin: Cal
Camilla: Cami, Millie
Candace: Candy
Caroline: Carrie, Carol, Lina, Caro
Catherine: Cathy, Cath, Kate, Katie, Kay, Kit, Kitty, Cat, Katherine, Kathryn, Kathy, Trina
Cecilia: Cissy, Celia, Sissy
Charles: Charlie, Chuck, Chas, Chaz, Chip, Carl, Carlos, Charley
Charlotte: Lottie, Charlie, Lotte, Carly
Christina: Chris, Chrissy, Tina, Kris, Kristina, Christine
Christopher: Chris, Kit, Topher, Cris, Kris, Christoph
Clarence: Clare
Clement: Clem
Clifford: Cliff
Cornelius: Neil, Connie, Corny
Cynthia: Cindy, Cyndi
Daniel: Dan, Danny, Dani
Danielle: Dani, Elle
David: Dave, Davy, Davey, Davie
Deborah: Deb, Debbie, Debby, Debra
Delores: Dee, Lola, Dolores
Dennis: Denny
Desmond: Des
Diana: Di, Diane
Dominic: Dom, Nick, Domingo
Donald: Don, Donnie, Donny
Dorothy: Dot, Dottie, Dolly, Dora, Dory
Douglas: Doug
Edith: Edie
Edmund: Ed, Eddie, Ted, Ned, Edmond
Edward: Ed, Eddie, Eddy, Ted, Teddy, Ned, Ward, Eduardo, Lalo
Edwin: Ed, Eddie, Win
Eleanor: Ellie, Nell, Nellie, Nora, Elle, Leonor, Elenor
Elizabeth: Liz, Lizzie, Lizzy, Beth, Betty, Betsy, Bess, Bessie, Eliza, Elisa, Elise, Libby,
    Lisa, Liza, Ellie, Elsie, Elisabeth, Isabel, Lilibet
Ellen: Ellie, Nell, Nellie
Emily: Em, Emmy, Millie, Emilia
Emma: Em, Emmy
Eric: Rick, Ricky
Ernest: Ernie
Esther: Essie, Hetty
Eugene: Gene
Evangeline: Eva, Evie, Angie
Evelyn: Eve, Evie, Lyn
Ezekiel: Zeke
Florence: Flo, Florrie, Flossie
Frances: Fran, Frannie, Francie, Fanny, Frankie
Francis: Frank, Frankie, Fran
Francisco: Paco, Pancho, Frank, Cisco, Kiko
Franklin: Frank, Frankie
Frederick: Fred, Freddie, Freddy, Fritz, Rick, Federico
Gabriel: Gabe, Gabby
Gabrielle: Gabby, Gabi, Brie, Gabriela
Geoffrey: Geoff, Jeff
Gerald: Gerry, Jerry
Geraldine: Gerry, Geri, Dina
Gertrude: Gertie, Trudy
Gilbert: Gil, Bert
Gregory: Greg
Gwendolyn: Gwen, Wendy
Guadalupe: Lupe, Lupita
Guillermo: Memo, Willy
Harold: Harry, Hal
Harriet: Hattie, Hettie
Helen: Nell, Nellie, Lena, Elena
Henrietta: Etta, Hettie, Retta
Henry: Hank, Harry, Hal, Enrique, Kike
Herbert: Herb, Bert
Howard: Howie
Ignacio: Nacho
Isaac: Ike, Zack
Isabella: Bella, Izzy, Isa, Belle, Isabel, Isabelle, Sabela
Isidore: Izzy
Jacob: Jake, Jack, Coby, Kobe
Jacqueline: Jackie, Jacqui, Jacquie
James: Jim, Jimmy, Jamie, Jem, Jimbo, Diego, Santiago
Jane: Janie, Jenny, Jean
Janet: Jan, Jenny, Nettie
Jasper: Jas
Jeffrey: Jeff
Jennifer: Jen, Jenn, Jenny, Jenni, Jennie
Jeremiah: Jerry, Jeremy
Jerome: Jerry
Jessica: Jess, Jessie
Jesus: Chuy, Chucho, Jesse
Joanna: Jo, Jo-Anne, Joanne, Joan
Johanna: Jo, Hanna, Hannah, Joanna
John: Johnny, Jack, Jackie, Jon, Jonny, Ian, Sean, Juan, Hans, Johann, Giovanni, Gianni, Jean
Jonathan: Jon, Johnny, Jonny, Nathan
Jose: Pepe, Pepito, Chepe, Joe
Joseph: Joe, Joey, Jo, Jos, Jody, Pepe, Giuseppe, Beppe, Jose
Josephine: Jo, Josie, Jody, Fina, Pepa
Joshua: Josh
Judith: Judy, Jude
Julia: Jules, Julie
Julian: Jules
Katherine: Kate, Katie, Kathy, Kat, Kay, Kit, Kitty, Catherine, Kathryn, Katy
Kathleen: Kathy, Kath, Katie, Kay, Kate
Kenneth: Ken, Kenny
Kimberly: Kim, Kimmy
Kristen: Kris, Kristy, Kirsty
Lawrence: Larry, Laurie, Lorenzo, Laurence
Leonard: Len, Lenny, Leo, Leon
Leonardo: Leo, Nardo
Lillian: Lil, Lily, Lilly, Lillie
Louis: Lou, Louie, Luis, Luigi, Ludwig
Louisa: Lou, Lulu, Louise, Luisa
Lucille: Lucy, Lu
Lucinda: Lucy, Cindy
Luke: Lucas, Luc
Madeline: Maddie, Maddy, Madie, Lena, Madeleine, Magdalena
Malcolm: Mal, Mac
Manuel: Manny, Manolo, Emmanuel
Margaret: Maggie, Meg, Peg, Peggy, Marge, Margie, Molly, Daisy, Greta, Rita, Madge, May,
    Megan, Margarita, Marjorie, Maisie
Marian: Mary, Mimi
Marilyn: Mary, Lyn
Martha: Marty, Mattie, Patsy
Martin: Marty
Mary: Molly, Polly, Mae, May, Mamie, Maria, Marie, Mimi, Minnie, Mollie
Matilda: Tilly, Tillie, Matty, Maud
Matthew: Matt, Matty, Mateo
Maureen: Mo, Mau
Maximilian: Max, Maxi
Maxwell: Max
Melanie: Mel
Melissa: Mel, Missy, Lissa
Michael: Mike, Mikey, Mick, Mickey, Mitch, Miguel, Michel, Mikhail, Misha
Michelle: Shelly, Micki, Mickie, Chelle
Mildred: Millie, Milly
Montgomery: Monty
Nathan: Nate
Nathaniel: Nate, Nat, Nathan
Nicholas: Nick, Nicky, Nico, Nicolas, Klaus, Nikolai
Nicole: Nicky, Nikki, Cole
Norman: Norm
Oliver: Ollie
Olivia: Liv, Livvy, Ollie
Oswald: Ozzy, Ossie
Pamela: Pam, Pammy
Patricia: Pat, Patty, Patti, Tricia, Trish, Trisha, Patsy
Patrick: Pat, Paddy, Rick, Padraig
Penelope: Penny, Nell
Peter: Pete, Pedro, Pierre, Piet
Philip: Phil, Pip
Phyllis: Phyl
Priscilla: Cilla, Prissy
Rachel: Rae, Shelly
Raymond: Ray
Rebecca: Becky, Becca, Reba, Beck
Reginald: Reg, Reggie
Richard: Rick, Ricky, Rich, Richie, Dick, Rico, Ricardo
Robert: Bob, Bobby, Rob, Robbie, Robby, Bert, Bertie, Roberto, Beto
Roberta: Bobbie, Robbie, Bertie
Rodney: Rod
Rodrigo: Rigo, Rod
Roger: Rodge
Ronald: Ron, Ronnie, Ronny
Rosalind: Ros, Roz
Rosemary: Rose, Rosie
Ruth: Ruthie
Samantha: Sam, Sammy, Sammie
Samuel: Sam, Sammy
Sandra: Sandy, Sandi
Sarah: Sally, Sadie, Sara, Sal
Sebastian: Seb, Bastian
Sidney: Sid
Solomon: Sol
Sophia: Sophie, Sofia
Stanley: Stan
Stephanie: Steph, Stevie, Fanny
Stephen: Steve, Stevie, Steven, Stefan, Esteban
Susan: Sue, Susie, Suzy, Suzanne, Susana
Sylvester: Sly
Terence: Terry
Teresa: Terry, Tess, Tessa, Teri, Terri, Tracy, Theresa
Theodore: Ted, Teddy, Theo
Theodora: Dora, Theda
Thomas: Tom, Tommy, Thom, Tomas
Timothy: Tim, Timmy
Tobias: Toby
Valentine: Val
Valerie: Val
Veronica: Ronnie, Nicky
Victor: Vic
Victoria: Vicky, Vickie, Tori, Vic
Vincent: Vince, Vinny, Vinnie, Vicente
Virginia: Ginny, Ginger, Virgie
Walter: Walt, Wally
Wilfred: Will, Fred
Wilhelmina: Mina, Willa, Minnie, Billie
William: Bill, Billy, Will, Willy, Willie, Liam, Wilhelm, Guillermo
Winifred: Winnie, Freddie
Yolanda: Yoli
Zachary: Zach, Zack, Zak
"""


def _lines() -> Iterator[tuple[str, tuple[str, ...]]]:
    """(formal name, short forms) per group; indented lines continue a group."""
    groups: list[tuple[str, list[str]]] = []
    for line in TABLE.strip("\n").splitlines():
        if line[:1].isspace():
            groups[-1][1].extend(line.split(","))
        else:
            formal, _, rest = line.partition(":")
            groups.append((formal, rest.split(",")))
    for formal, short in groups:
        yield formal.strip(), tuple(n.strip() for n in short if n.strip())


@cache
def _groups() -> dict[str, frozenset[int]]:
    """name key -> the indices of the groups it belongs to."""
    index: dict[str, set[int]] = {}
    for number, (formal, short) in enumerate(_lines()):
        for name in (formal, *short):
            key = name_key(name)
            if key:
                index.setdefault(key, set()).add(number)
    return {key: frozenset(groups) for key, groups in index.items()}


def groups_of(name: str) -> frozenset[int]:
    """The groups a normalised name (a :func:`~bridge.bookings.normalize.name_key`) is in."""
    return _groups().get(name, frozenset())


def are_nicknames(a: str, b: str) -> bool:
    """Whether two different normalised given names are nickname relations.

    Both arguments are :func:`~bridge.bookings.normalize.name_key` values.
    Equal names are not relations (they are the same name).
    """
    if not a or not b or a == b:
        return False
    return bool(groups_of(a) & groups_of(b))


def group_count() -> int:
    """How many groups the table has (for tests and documentation)."""
    return sum(1 for _ in _lines())
