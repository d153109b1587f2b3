"""Fixed reference data of the sample practice: pick lists, codes, types.

Everything here is constant (no randomness): definition pick lists per DefCat,
CDT-style procedure codes with default time patterns and fees, appointment
types, recall types and insurance plan names. Descriptions are short
paraphrases written for this sandbox, not the ADA's descriptors.
Patterns use Open Dental's encoding: one character per 5 minutes, ``X`` for
provider time and ``/`` for assistant time.
"""

from __future__ import annotations

from dataclasses import dataclass

# DefCat numbers (Open Dental's DefCat enum).
APPT_CONFIRMED = 2
BILLING_TYPES = 4
PAYMENT_TYPES = 10
PROC_CODE_CATS = 11
RECALL_UNSCHED_STATUS = 13
BLOCKOUT_TYPES = 25
COMMLOG_TYPES = 27
PROVIDER_SPECIALTIES = 35

# (ItemName, ItemValue, ItemColor) per category, in ItemOrder.
DEFINITIONS: dict[int, tuple[tuple[str, str, int], ...]] = {
    APPT_CONFIRMED: (
        ("Not Called", "", 0),
        ("Unconfirmed", "", 0),
        ("Left Message", "LM", 16744448),
        ("Confirmed", "C", 65280),
        ("Texted", "TXT", 8421631),
        ("E-mailed", "EM", 8421631),
        ("Arrived", "A", 16776960),
        ("Checked Out", "CO", 12632256),
    ),
    BILLING_TYPES: (
        ("Standard Account", "", 0),
        ("Insurance Only", "", 0),
        ("Collections", "C", 0),
        ("Bad Debt", "", 0),
    ),
    PAYMENT_TYPES: (
        ("Check", "", 0),
        ("Cash", "", 0),
        ("Credit Card", "", 0),
        ("Debit Card", "", 0),
        ("CareCredit", "", 0),
        ("Online Payment", "", 0),
    ),
    PROC_CODE_CATS: (
        ("Exams & Xrays", "", 0),
        ("Cleanings", "", 0),
        ("Fillings", "", 0),
        ("Crowns & Bridges", "", 0),
        ("Endodontics", "", 0),
        ("Periodontics", "", 0),
        ("Oral Surgery", "", 0),
        ("Adjunctive", "", 0),
        ("Obsolete", "", 0),
    ),
    RECALL_UNSCHED_STATUS: (
        ("Called - no answer", "", 0),
        ("Left message", "", 0),
        ("Will call back", "", 0),
        ("Texted", "", 0),
        ("Moved away", "", 0),
    ),
    BLOCKOUT_TYPES: (
        ("Lunch", "", 12632256),
        ("Staff Meeting", "", 16711935),
        ("Emergency", "", 16711680),
        ("High Production", "", 65535),
        ("New Patient", "", 65280),
        ("No Appointments", "", 8421504),
    ),
    COMMLOG_TYPES: (
        ("Appt Related", "APPT", 0),
        ("Insurance", "INS", 0),
        ("Financial", "FIN", 0),
        ("Recall", "RECALL", 0),
        ("Misc", "MISC", 0),
    ),
    PROVIDER_SPECIALTIES: (
        ("General", "", 0),
        ("Hygienist", "", 0),
        ("Endodontics", "", 0),
        ("Pediatric", "", 0),
        ("Periodontics", "", 0),
        ("Prosthodontics", "", 0),
        ("Orthodontics", "", 0),
        ("Oral Surgery", "", 0),
    ),
}

# Treatment areas (TreatmentArea enum).
AREA_NONE, AREA_SURF, AREA_TOOTH, AREA_MOUTH, AREA_QUAD = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Code:
    code: str
    descript: str
    abbr: str
    proc_time: str
    category: str  # ItemName in PROC_CODE_CATS
    area: int
    fee: float
    coverage: float  # share the typical plan pays
    hygiene: bool = False
    no_bill_ins: bool = False


CODES: tuple[Code, ...] = (
    Code(
        "D0120",
        "Periodic oral evaluation, established patient",
        "PerEx",
        "/X/",
        "Exams & Xrays",
        AREA_MOUTH,
        62.0,
        1.0,
    ),
    Code(
        "D0140",
        "Limited oral evaluation, problem focused",
        "LimEx",
        "/X/",
        "Exams & Xrays",
        AREA_MOUTH,
        88.0,
        1.0,
    ),
    Code(
        "D0150",
        "Comprehensive oral evaluation",
        "CompEx",
        "/XX/",
        "Exams & Xrays",
        AREA_MOUTH,
        105.0,
        1.0,
    ),
    Code(
        "D0210",
        "Intraoral complete series of radiographic images",
        "FMX",
        "/X/",
        "Exams & Xrays",
        AREA_MOUTH,
        145.0,
        1.0,
    ),
    Code(
        "D0220",
        "Intraoral periapical, first image",
        "PA",
        "/",
        "Exams & Xrays",
        AREA_TOOTH,
        34.0,
        1.0,
    ),
    Code(
        "D0230",
        "Intraoral periapical, each additional image",
        "PA2",
        "/",
        "Exams & Xrays",
        AREA_TOOTH,
        28.0,
        1.0,
    ),
    Code("D0274", "Bitewings, four images", "4BW", "/", "Exams & Xrays", AREA_MOUTH, 72.0, 1.0),
    Code(
        "D0330",
        "Panoramic radiographic image",
        "Pano",
        "/",
        "Exams & Xrays",
        AREA_MOUTH,
        120.0,
        1.0,
    ),
    Code(
        "D1110",
        "Prophylaxis, adult",
        "Pro",
        "/XXXX/",
        "Cleanings",
        AREA_MOUTH,
        115.0,
        1.0,
        hygiene=True,
    ),
    Code(
        "D1120",
        "Prophylaxis, child",
        "ChPro",
        "/XX/",
        "Cleanings",
        AREA_MOUTH,
        82.0,
        1.0,
        hygiene=True,
    ),
    Code(
        "D1206",
        "Topical fluoride varnish",
        "FlVarn",
        "/",
        "Cleanings",
        AREA_MOUTH,
        45.0,
        1.0,
        hygiene=True,
    ),
    Code(
        "D1351",
        "Sealant, per tooth",
        "Seal",
        "/X/",
        "Cleanings",
        AREA_TOOTH,
        55.0,
        0.8,
        hygiene=True,
    ),
    Code("D2140", "Amalgam, one surface", "A1", "/XX/", "Fillings", AREA_SURF, 138.0, 0.8),
    Code("D2150", "Amalgam, two surfaces", "A2", "/XXX/", "Fillings", AREA_SURF, 172.0, 0.8),
    Code(
        "D2330",
        "Resin composite, one surface, anterior",
        "C1A",
        "/XX/",
        "Fillings",
        AREA_SURF,
        160.0,
        0.8,
    ),
    Code(
        "D2391",
        "Resin composite, one surface, posterior",
        "C1P",
        "/XX/",
        "Fillings",
        AREA_SURF,
        175.0,
        0.8,
    ),
    Code(
        "D2392",
        "Resin composite, two surfaces, posterior",
        "C2P",
        "/XXX/",
        "Fillings",
        AREA_SURF,
        225.0,
        0.8,
    ),
    Code(
        "D2393",
        "Resin composite, three surfaces, posterior",
        "C3P",
        "/XXXX/",
        "Fillings",
        AREA_SURF,
        275.0,
        0.8,
    ),
    Code(
        "D2740",
        "Crown, porcelain/ceramic",
        "CrnPorc",
        "//XXXXXX//",
        "Crowns & Bridges",
        AREA_TOOTH,
        1250.0,
        0.5,
    ),
    Code(
        "D2750",
        "Crown, porcelain fused to high noble metal",
        "PFM",
        "//XXXXXX//",
        "Crowns & Bridges",
        AREA_TOOTH,
        1180.0,
        0.5,
    ),
    Code(
        "D2950",
        "Core buildup, including any pins",
        "BU",
        "/XX/",
        "Crowns & Bridges",
        AREA_TOOTH,
        285.0,
        0.5,
    ),
    Code(
        "D3310",
        "Endodontic therapy, anterior tooth",
        "RCTAnt",
        "//XXXXXX//",
        "Endodontics",
        AREA_TOOTH,
        820.0,
        0.8,
    ),
    Code(
        "D3320",
        "Endodontic therapy, premolar tooth",
        "RCTPM",
        "//XXXXXXX//",
        "Endodontics",
        AREA_TOOTH,
        950.0,
        0.8,
    ),
    Code(
        "D3330",
        "Endodontic therapy, molar tooth",
        "RCTMol",
        "//XXXXXXXX//",
        "Endodontics",
        AREA_TOOTH,
        1150.0,
        0.8,
    ),
    Code(
        "D4341",
        "Scaling and root planing, four or more teeth per quadrant",
        "SRP4+",
        "/XXXX/",
        "Periodontics",
        AREA_QUAD,
        245.0,
        0.8,
        hygiene=True,
    ),
    Code(
        "D4342",
        "Scaling and root planing, one to three teeth per quadrant",
        "SRP1-3",
        "/XXX/",
        "Periodontics",
        AREA_QUAD,
        175.0,
        0.8,
        hygiene=True,
    ),
    Code(
        "D4910",
        "Periodontal maintenance",
        "PerioMnt",
        "/XXXXXX/",
        "Periodontics",
        AREA_MOUTH,
        155.0,
        0.8,
        hygiene=True,
    ),
    Code(
        "D7140",
        "Extraction, erupted tooth or exposed root",
        "Ext",
        "/XX/",
        "Oral Surgery",
        AREA_TOOTH,
        195.0,
        0.8,
    ),
    Code(
        "D7210",
        "Surgical extraction of erupted tooth",
        "SurgExt",
        "/XXXX/",
        "Oral Surgery",
        AREA_TOOTH,
        335.0,
        0.8,
    ),
    Code(
        "D9110",
        "Palliative treatment of dental pain, per visit",
        "Palliative",
        "/X/",
        "Adjunctive",
        AREA_MOUTH,
        95.0,
        0.8,
    ),
    Code("D9230", "Inhalation of nitrous oxide", "N2O", "/", "Adjunctive", AREA_MOUTH, 65.0, 0.0),
    Code(
        "D9310",
        "Consultation, diagnostic service",
        "Consult",
        "/XX/",
        "Adjunctive",
        AREA_MOUTH,
        110.0,
        0.8,
    ),
    Code(
        "D9986",
        "Missed appointment",
        "Missed",
        "/",
        "Adjunctive",
        AREA_NONE,
        0.0,
        0.0,
        no_bill_ins=True,
    ),
    Code(
        "D1203",
        "Topical fluoride, child (code retired)",
        "FlChOld",
        "/",
        "Obsolete",
        AREA_MOUTH,
        0.0,
        0.0,
        hygiene=True,
    ),
)
CODE_INDEX: dict[str, int] = {code.code: i for i, code in enumerate(CODES)}


@dataclass(frozen=True)
class AptType:
    """An appointment type; ``kind`` drives which procedures a visit gets."""

    name: str
    pattern: str
    codes: str  # CodeStr: comma-separated ProcCodes
    color: int
    kind: str
    hygiene: bool


APT_TYPES: tuple[AptType, ...] = (
    AptType("New Patient", "/XXXXXXX//", "D0150,D0210,D1110", 33023, "new", hygiene=True),
    AptType("Recall", "/XXXXXXXX/", "D0120,D1110,D0274", 65280, "recall", hygiene=True),
    AptType("Child Recall", "/XXXX/", "D0120,D1120,D1206", 65535, "child", hygiene=True),
    AptType("Perio Maintenance", "/XXXXXXXX/", "D4910,D0120", 32768, "perio", hygiene=True),
    AptType("Scaling & Root Planing", "//XXXXXXXXXX//", "D4341,D4341", 16384, "srp", hygiene=True),
    AptType("Filling", "/XXXX/", "D2391", 16776960, "filling", hygiene=False),
    AptType("Crown Prep", "//XXXXXXXXXX//", "D2950,D2740", 16711935, "crown", hygiene=False),
    AptType("Root Canal", "//XXXXXXXXXXXX//", "D3330", 8388736, "endo", hygiene=False),
    AptType("Extraction", "/XXXX/", "D7140", 8421376, "extraction", hygiene=False),
    AptType("Emergency", "/XX/", "D0140,D0220,D9110", 255, "emergency", hygiene=False),
    AptType("Consult", "/XX//", "D9310", 12632256, "consult", hygiene=False),
)
APT_TYPE_INDEX: dict[str, int] = {apt_type.kind: i for i, apt_type in enumerate(APT_TYPES)}

# Weighted visit mixes (kind, weight) for the two kinds of operatory.
DENTAL_MIX: tuple[tuple[str, int], ...] = (
    ("filling", 46),
    ("crown", 16),
    ("endo", 7),
    ("extraction", 9),
    ("emergency", 12),
    ("consult", 10),
)
HYGIENE_MIX: tuple[tuple[str, int], ...] = (("recall", 86), ("new", 8), ("srp", 6))


@dataclass(frozen=True)
class RecallKind:
    description: str
    interval: int  # packed: byte 0 days, 1 weeks, 2 months, 3 years
    time_pattern: str
    procedures: str


def packed_interval(*, years: int = 0, months: int = 0, weeks: int = 0, days: int = 0) -> int:
    """Open Dental's packed recall interval (six months = 393216)."""
    return (years << 24) | (months << 16) | (weeks << 8) | days


RECALL_TYPES: tuple[RecallKind, ...] = (
    RecallKind("Prophy", packed_interval(months=6), "/XXXXXXXX/", "D0120,D1110"),
    RecallKind("Child Prophy", packed_interval(months=6), "/XXXX/", "D0120,D1120,D1206"),
    RecallKind("Perio", packed_interval(months=3), "/XXXXXXXX/", "D4910"),
    RecallKind("4BW", packed_interval(years=1), "", "D0274"),
)
PROPHY, CHILD_PROPHY, PERIO, BITEWINGS = range(4)

# Insurance: (carrier, group name stem); PlanType '' is Category Percentage.
CARRIERS: tuple[str, ...] = (
    "Delta Dental",
    "MetLife",
    "Cigna Dental",
    "Aetna Dental",
    "Guardian",
    "United Concordia",
    "Ameritas",
    "Principal",
    "Humana Dental",
    "Sun Life",
)
EMPLOYER_STEMS: tuple[str, ...] = (
    "Pacific Timber",
    "Bayview Schools",
    "Cascade Health",
    "Golden Gate Transit",
    "Sierra Foods",
    "Harbor Logistics",
    "Redwood Software",
    "Valley Water District",
    "Summit Credit Union",
    "Coastal Builders",
    "Mission Retail",
    "Orchard Farms",
)
