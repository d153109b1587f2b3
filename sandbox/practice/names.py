"""Synthetic people: names, addresses, phones, emails, SSNs, note text.

Pools are plain tuples, sampled with the caller's ``random.Random`` only, so
output depends on the seed and nothing else. Deliberately awkward values that
real practice databases contain are part of the pools: non-ASCII and
apostrophe names, hyphenated surnames, phones in mixed formats.

Nothing here is real: phones use the fictional 555-0100..555-0199 range and
emails only ``example.com``/``example.org``. (There are no SSNs: the vendored
DDL's patient table has no SSN column.)
"""

from __future__ import annotations

import random

FEMALE = (
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Emily",
    "Olivia",
    "Emma",
    "Ava",
    "Sophia",
    "Isabella",
    "Mia",
    "Charlotte",
    "Amelia",
    "Harper",
    "Chloe",
    "Grace",
    "Hannah",
    "Lily",
    "Ana",
    "María",
    "Lucía",
    "Camila",
    "Valentina",
    "Mei",
    "Yuki",
    "Priya",
    "Aisha",
    "Fatima",
    "Siân",
    "Zoë",
    "Aoife",
    "Chloé",
    "Renée",
    "Inés",
    "Thảo",
    "Linh",
    "Mai",
    "Ngọc",
    "Ji-woo",
    "Seo-yeon",
    "Sadie",
    "Nora",
    "Leah",
    "Ruth",
    "Joan",
    "Diane",
    "Gloria",
    "Teresa",
)
MALE = (
    "James",
    "Robert",
    "John",
    "Michael",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Charles",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Liam",
    "Noah",
    "Oliver",
    "Elijah",
    "Lucas",
    "Mason",
    "Ethan",
    "Logan",
    "José",
    "Luis",
    "Carlos",
    "Juan",
    "Miguel",
    "Andrés",
    "Ángel",
    "Wei",
    "Hiroshi",
    "Arjun",
    "Omar",
    "Mohammed",
    "Dafydd",
    "Seán",
    "Pádraig",
    "Jürgen",
    "François",
    "Björn",
    "Minh",
    "Huy",
    "Quang",
    "Min-jun",
    "Tariq",
    "Kofi",
    "Eli",
    "Caleb",
    "Henry",
    "Walter",
    "Frank",
    "Gary",
    "Dennis",
    "Ray",
)
SURNAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Kim",
    "Park",
    "Chen",
    "Wang",
    "Patel",
    "Shah",
    "Tanaka",
    "Sato",
    "Cohen",
    "O'Brien",
    "O'Connor",
    "D'Angelo",
    "O'Neill",
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Ó Súilleabháin",
    "Müller",
    "Schröder",
    "Peña",
    "Núñez",
    "Muñoz",
    "Ibáñez",
    "Fernández",
    "Jiménez",
    "Gómez",
    "Öztürk",
    "Çelik",
    "Søren",
    "Ødegaard",
    "Kowalczyk",
    "Van der Berg",
    "de la Cruz",
    "St. John",
    "MacDonald",
    "McAllister",
    "Jones-Smith",
    "García-López",
    "Smith-Jones",
    "Ruiz-Díaz",
    "Nakamura-Reyes",
    "Okafor",
    "Mensah",
)
PREFERRED = {
    "William": "Bill",
    "Robert": "Bob",
    "Elizabeth": "Liz",
    "Michael": "Mike",
    "Richard": "Rick",
    "Patricia": "Patty",
    "Jennifer": "Jen",
    "José": "Pepe",
    "Joseph": "Joe",
    "Daniel": "Dan",
    "Matthew": "Matt",
    "Thomas": "Tom",
}
STREETS = (
    "Oak",
    "Maple",
    "Cedar",
    "Pine",
    "Elm",
    "Madrone",
    "Sequoia",
    "Juniper",
    "Lincoln",
    "Mission",
    "Alameda",
    "Ocean View",
    "Hillcrest",
    "Sunset",
    "Vista",
    "Camino Real",
    "Laurel",
    "Willow",
    "Harbor",
    "Bayshore",
    "Frontier",
    "Mariposa",
    "El Camino",
)
STREET_KINDS = ("St", "Ave", "Blvd", "Dr", "Ln", "Way", "Ct", "Rd", "Pl")
# (city, state, first three zip digits, area code)
CITIES = (
    ("Oakland", "CA", "946", "510"),
    ("San Jose", "CA", "951", "408"),
    ("Sacramento", "CA", "958", "916"),
    ("Fresno", "CA", "937", "559"),
    ("Santa Rosa", "CA", "954", "707"),
    ("San Mateo", "CA", "944", "650"),
    ("Portland", "OR", "972", "503"),
    ("Salem", "OR", "973", "971"),
    ("Eugene", "OR", "974", "541"),
    ("Reno", "NV", "895", "775"),
    ("Tacoma", "WA", "984", "253"),
    ("Vancouver", "WA", "986", "360"),
)
LANGUAGES = ("eng", "eng", "eng", "eng", "spa", "spa", "vie", "zho", "kor", "")
APPOINTMENT_NOTES = (
    "Pt prefers morning appts.",
    "Nervous patient - go slow, explain each step.",
    "Premed required (amoxicillin 2g 1hr before).",
    "Pt will be 10 min late, called ahead.",
    "Pt requests nitrous.",
    "Spanish-speaking; daughter interprets.",
    "Needs wheelchair access; use Op near front.",
    "Latex allergy!",
    "Ins verified.\r\nCopay due at visit.",
    'Pt says "tooth #30 sensitive to cold".',
    "Pt's mother O'Brien called to confirm.",
)
COMMLOG_NOTES = (
    "Left message to confirm appointment.",
    "Texted appointment reminder; pt replied C.",
    "Pt called to ask about balance.",
    "Emailed treatment plan estimate.",
    "Called re: recall - no answer.",
    "Pt confirmed by phone.",
    "Insurance called: claim received, processing.",
    "Pt asked to be put on ASAP list.",
)


def person_name(rng: random.Random, female: bool) -> str:
    return rng.choice(FEMALE if female else MALE)


def surname(rng: random.Random) -> str:
    return rng.choice(SURNAMES)


def address(rng: random.Random) -> tuple[str, str, str, str, str, str]:
    """(Address, Address2, City, State, Zip, area code)."""
    city, state, zip3, area = rng.choice(CITIES)
    line = f"{rng.randint(10, 9899)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
    line2 = ""
    if rng.random() < 0.12:
        line2 = rng.choice(("Apt ", "Unit ", "#", "Suite ")) + str(rng.randint(1, 420))
    return line, line2, city, state, f"{zip3}{rng.randint(0, 99):02d}", area


def phone(rng: random.Random, area: str) -> str:
    """A fictional 555-01xx number in one of the formats front desks type."""
    line = f"01{rng.randint(0, 99):02d}"
    form = rng.randrange(7)
    if form == 0:
        return f"({area})555-{line}"
    if form == 1:
        return f"({area}) 555-{line}"
    if form == 2:
        return f"{area}-555-{line}"
    if form == 3:
        return f"{area}.555.{line}"
    if form == 4:
        return f"{area}555{line}"
    if form == 5:
        return f"+1 {area} 555 {line}"
    return f"555-{line}"


def optional_phone(rng: random.Random, area: str, share: float) -> str | None:
    """A phone with probability ``share``; otherwise '' or NULL (both occur)."""
    if rng.random() < share:
        return phone(rng, area)
    return None if rng.random() < 0.4 else ""


def email(rng: random.Random, first: str, last: str) -> str:
    kept = (c for c in f"{first}.{last}".lower() if c.isascii() and (c.isalnum() or c == "."))
    local = "".join(kept).strip(".") or "patient"
    suffix = str(rng.randint(1, 99)) if rng.random() < 0.4 else ""
    return f"{local}{suffix}@{rng.choice(('example.com', 'example.org'))}"
