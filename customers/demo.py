"""
Demo companies and contacts for seed_demo. Deterministic for a given random seed, written in
batches with bulk_create so the large scale (20,000 companies) never sits in memory at once.
Skipped when companies already exist.
"""

import datetime
import re
import unicodedata
from random import Random

from django.utils import timezone

from accounts.demo import DemoContext
from customers.models import Company, Contact, Region, Segment, SizeBand
from customers.normalize import normalize_domain, normalize_email, normalize_phone

COMPANIES = {"small": 500, "large": 20_000}
BATCH_SIZE = 2000
# Contacts per company (choices, weights); the extra-large scale (bench.seed.xl_scale) has ten.
CONTACTS_PER_COMPANY = ([1, 2, 3], [35, 40, 25])

NAME_STEMS = [
    "Aldgate", "Alder", "Amberley", "Ashby", "Aspen", "Avalon", "Barrow", "Beacon", "Birch",
    "Blackwater", "Bramble", "Brightwell", "Broadoak", "Calder", "Cardinal", "Castleton",
    "Cedar", "Clearwater", "Cobalt", "Coldharbour", "Copper", "Corran", "Crescent", "Dart",
    "Delta", "Dunmore", "Eastgate", "Elmstead", "Ember", "Fairfield", "Falcon", "Fernhill",
    "Fieldstone", "Foxley", "Granite", "Greyfriars", "Halden", "Harbour", "Hawthorn", "Heron",
    "Highmoor", "Holloway", "Ironbridge", "Juniper", "Kestrel", "Kingsley", "Lark", "Linden",
    "Lockwood", "Lumen", "Maple", "Marlow", "Meridian", "Millbrook", "Northgate", "Oakridge",
    "Orchard", "Osprey", "Paragon", "Pennine", "Quarry", "Radcliffe", "Redwood", "Ridgeway",
    "Rowan", "Saltire", "Severn", "Silverbirch", "Skylark", "Solent", "Sterling", "Stonebridge",
    "Summit", "Tamar", "Thistle", "Tidewater", "Trent", "Vantage", "Westbrook", "Whitmore",
    "Willow", "Wren", "Yarrow",
]  # fmt: skip
NAME_SECONDS = [
    "Bay", "Bridge", "Brook", "Cross", "Dale", "Field", "Gate", "Hill", "Lane", "Mill", "Park",
    "Point", "Ridge", "Stone", "Vale", "Water", "Wood", "North", "Blue", "Green",
]  # fmt: skip
SEGMENT_WORDS = {
    Segment.SOFTWARE: ["Systems", "Software", "Labs", "Digital", "Cloud", "Technologies"],
    Segment.MANUFACTURING: ["Engineering", "Components", "Manufacturing", "Precision", "Works"],
    Segment.HEALTHCARE: ["Health", "Medical", "Care", "Clinics", "Diagnostics"],
    Segment.FINANCE: ["Capital", "Finance", "Insurance", "Partners", "Mutual"],
    Segment.RETAIL: ["Retail", "Stores", "Outfitters", "Home", "Market"],
    Segment.PUBLIC: ["Council", "Authority", "Housing Trust", "Services"],
    Segment.EDUCATION: ["Academy", "College", "Learning", "Schools Trust"],
    Segment.LOGISTICS: ["Logistics", "Freight", "Transport", "Distribution"],
    Segment.MEDIA: ["Media", "Studios", "Publishing", "Broadcast"],
    Segment.ENERGY: ["Energy", "Power", "Renewables", "Utilities"],
}
SEGMENT_WEIGHTS = {
    Segment.SOFTWARE: 18,
    Segment.MANUFACTURING: 14,
    Segment.HEALTHCARE: 10,
    Segment.FINANCE: 13,
    Segment.RETAIL: 11,
    Segment.PUBLIC: 7,
    Segment.EDUCATION: 6,
    Segment.LOGISTICS: 8,
    Segment.MEDIA: 6,
    Segment.ENERGY: 7,
}
REGION_WEIGHTS = {
    Region.UK: 40,
    Region.EUROPE: 25,
    Region.NORTH_AMERICA: 20,
    Region.APAC: 10,
    Region.OTHER: 5,
}
SIZE_WEIGHTS = {SizeBand.SMALL: 35, SizeBand.MID: 35, SizeBand.LARGE: 20, SizeBand.ENTERPRISE: 10}
LEGAL_SUFFIXES = {
    Region.UK: ["Ltd", "Ltd", "plc", "Group"],
    Region.EUROPE: ["GmbH", "SA", "BV", "AB", "SpA"],
    Region.NORTH_AMERICA: ["Inc.", "Inc.", "Corp.", "LLC"],
    Region.APAC: ["Pty Ltd", "Pte Ltd", "Limited", "KK"],
    Region.OTHER: ["Holdings", "Group", "S.A.", "Ltd"],
}
TLDS = {
    Region.UK: ["co.uk", "co.uk", "uk", "com"],
    Region.EUROPE: ["de", "fr", "nl", "se", "es", "it", "eu"],
    Region.NORTH_AMERICA: ["com", "com", "io", "ca"],
    Region.APAC: ["com.au", "sg", "co.nz", "co.jp"],
    Region.OTHER: ["co.za", "com.br", "ae", "com"],
}
# Public bodies and schools do not carry a company suffix.
NO_SUFFIX = {Segment.PUBLIC, Segment.EDUCATION}

FIRST_NAMES = [
    "Olivia", "James", "Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur",
    "Freya", "Leo", "Grace", "Harry", "Priya", "Rahul", "Aisha", "Omar", "Chen", "Mei",
    "Lukas", "Hannah", "Pierre", "Camille", "Sofia", "Mateo", "Ingrid", "Lars", "Yuki",
    "Kenji", "Chloe", "Daniel", "Fatima", "Kwame", "Zanele", "Tomás", "Anna", "Marek", "Eilidh",
    "Rhys", "Siobhan", "Ciaran", "Nadia", "Ravi", "Emily", "Jack", "Laura", "Ben", "Ruth",
    "David", "Sarah", "Michael", "Joanna", "Patrick", "Helen", "Sanjay", "Anjali", "Marta",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Khan", "Evans", "Thomas", "Roberts", "Walker", "Wright", "Robinson", "Thompson", "Hughes",
    "Edwards", "Green", "Hall", "Wood", "Clarke", "Lewis", "Harris", "Martin", "Jackson",
    "Campbell", "Murphy", "O'Brien", "Kelly", "MacLeod", "Nowak", "Müller", "Schmidt", "Dubois",
    "Laurent", "Rossi", "García", "Fernández", "Jansen", "de Vries", "Andersson", "Nielsen",
    "Tanaka", "Sato", "Wang", "Li", "Nguyen", "Singh", "Okoye", "Mensah", "Silva", "Costa",
]  # fmt: skip
TITLES = [
    "Chief Executive", "Chief Financial Officer", "Chief Operating Officer", "Finance Director",
    "Head of Finance", "Head of Operations", "Operations Manager", "IT Director",
    "Head of Procurement", "Procurement Manager", "Head of Customer Service",
    "Head of Digital", "Commercial Director", "Financial Controller", "Project Manager",
    "Head of Data", "Payments Manager", "Business Systems Analyst", "Managing Director", "",
]  # fmt: skip
# Ofcom's ranges reserved for drama: realistic UK numbers that reach nobody.
PHONE_RANGES = [
    ("020 7946 0", "+44 20 7946 0"),
    ("0113 496 0", "+44 113 496 0"),
    ("0117 496 0", "+44 117 496 0"),
    ("0121 496 0", "+44 121 496 0"),
    ("0131 496 0", "+44 131 496 0"),
    ("0141 496 0", "+44 141 496 0"),
    ("0161 496 0", "+44 161 496 0"),
    ("0191 498 0", "+44 191 498 0"),
    ("01632 960", "+44 1632 960"),
    ("07700 900", "+44 7700 900"),
]


def _weighted(rng: Random, weights: dict) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class _Names:
    """Unique company names and domains across one run."""

    def __init__(self):
        self.names: set[str] = set()
        self.domains: set[str] = set()

    def company(self, rng: Random, segment: str, region: str) -> tuple[str, str]:
        for _ in range(20):
            stem = rng.choice(NAME_STEMS)
            if rng.random() < 0.35:
                stem = f"{stem} {rng.choice(NAME_SECONDS)}"
            core = f"{stem} {rng.choice(SEGMENT_WORDS[segment])}"
            if core not in self.names:
                break
        else:
            core = f"{core} {rng.choice(NAME_SECONDS)}"
        self.names.add(core)
        name = core
        if segment not in NO_SUFFIX and rng.random() < 0.8:
            name = f"{core} {rng.choice(LEGAL_SUFFIXES[region])}"
        base = _slug(core) if rng.random() < 0.7 else _slug(stem)
        domain = f"{base}.{rng.choice(TLDS[region])}"
        n = 2
        while domain in self.domains:
            domain = f"{base}{n}.{rng.choice(TLDS[region])}"
            n += 1
        self.domains.add(domain)
        return name, normalize_domain(domain)


def _phone(rng: Random) -> str:
    national, international = rng.choice(PHONE_RANGES)
    prefix = international if rng.random() < 0.3 else national
    return f"{prefix}{rng.randrange(1000):03d}"


def _unassigned_phone(rng: Random) -> str:
    """
    For the extra-large scale, whose 850,000 phones the drama ranges' 10,000 numbers cannot
    hold: spread over those, about 85 contacts of as many companies shared each number, and
    every call-list row with a phone read the suppressions of 85 companies. Country code 999 is
    assigned to no country (ITU spare code), so these reach nobody either.
    """
    return f"+999 {rng.randrange(10**9):09d}"


def _contacts_for(rng: Random, company: Company, phone_for=_phone) -> list[Contact]:
    contacts = []
    used: set[str] = set()
    for _ in range(rng.choices(CONTACTS_PER_COMPANY[0], weights=CONTACTS_PER_COMPANY[1])[0]):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local_first, local_last = _slug(_ascii(first)), _slug(_ascii(last))
        local = rng.choice(
            [f"{local_first}.{local_last}", f"{local_first[0]}{local_last}", local_first]
        )
        if local in used:
            local = f"{local_first}.{local_last}{len(used) + 1}"
        used.add(local)
        phone = phone_for(rng) if rng.random() < 0.85 else ""
        contacts.append(
            Contact(
                company=company,
                full_name=f"{first} {last}",
                title=rng.choice(TITLES),
                email=normalize_email(f"{local}@{company.domain}"),
                phone=phone,
                phone_normalized=normalize_phone(phone),
                created_at=company.created_at + datetime.timedelta(days=rng.randint(0, 30)),
            )
        )
    return contacts


def seed(ctx: DemoContext) -> None:
    if Company.objects.exists():
        ctx.data["company_count"] = Company.objects.count()
        ctx.log("  companies already exist; left as they are")
        return
    rng = ctx.rng
    total = COMPANIES[ctx.scale]
    phone_for = _unassigned_phone if ctx.scale == "xl" else _phone
    names = _Names()
    now = timezone.now()
    made_companies = made_contacts = 0
    while made_companies < total:
        batch = []
        for _ in range(min(BATCH_SIZE, total - made_companies)):
            segment = _weighted(rng, SEGMENT_WEIGHTS)
            region = _weighted(rng, REGION_WEIGHTS)
            name, domain = names.company(rng, segment, region)
            batch.append(
                Company(
                    name=name,
                    domain=domain,
                    segment=segment,
                    size_band=_weighted(rng, SIZE_WEIGHTS),
                    region=region,
                    created_at=now - datetime.timedelta(days=rng.randint(60, 1500)),
                )
            )
        Company.objects.bulk_create(batch, batch_size=BATCH_SIZE)
        contacts = [c for company in batch for c in _contacts_for(rng, company, phone_for)]
        Contact.objects.bulk_create(contacts, batch_size=BATCH_SIZE)
        # About 3% asked not to be contacted: the suppressions app's demo step records them
        # as do-not-contact suppressions, which set the flag.
        ctx.data.setdefault("asked_not_to_be_contacted", []).extend(
            c.pk for c in contacts if rng.random() < 0.03
        )
        made_companies += len(batch)
        made_contacts += len(contacts)
    ctx.data["company_count"] = made_companies
    ctx.log(f"  companies: {made_companies}, contacts: {made_contacts}")
