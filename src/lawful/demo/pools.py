"""Small fixed pools the Kerf generator draws from: names, places, companies, texts.

Everything here is invented or generic; e-mail domains are under the reserved `.example` names
(RFC 2606), so demo data can never mail a real inbox. No value contains a tab or a backslash
(the PostgreSQL loader writes COPY text without escaping them).
"""

from __future__ import annotations

import unicodedata

FIRST_NAMES: tuple[str, ...] = (
    "Jan", "Pieter", "Kees", "Henk", "Bram", "Daan", "Sem", "Lucas", "Jesse", "Thijs", "Ruben",
    "Stijn", "Joris", "Maarten", "Wouter", "Sander", "Niels", "Bas", "Tim", "Tom", "Koen",
    "Jeroen", "Erik", "Frank", "Gert", "Hans", "Jurgen", "Klaus", "Stefan", "Matthias", "Tobias",
    "Florian", "Lukas", "Jonas", "Felix", "Andreas", "Michael", "Thomas", "Markus", "Wim", "Luc",
    "Dirk", "Bart", "Geert", "Filip", "Pieterjan", "Arne", "Ahmed", "Mohamed", "Youssef",
    "Mehmet", "Emre", "Piotr", "Tomasz", "Marco", "Luca", "David", "Daniel", "James", "Oliver",
    "Anna", "Emma", "Sophie", "Julia", "Lisa", "Sanne", "Fleur", "Eva", "Lotte", "Iris", "Femke",
    "Anouk", "Maud", "Noor", "Sara", "Laura", "Inge", "Marieke", "Esther", "Linda", "Monique",
    "Petra", "Katrin", "Sabine", "Claudia", "Nicole", "Lena", "Hannah", "Mia", "Leonie",
    "Johanna", "Charlotte", "Elke", "Griet", "Ine", "Lien", "Ilse", "Fatima", "Aisha", "Zeynep",
    "Elif", "Agnieszka", "Katarzyna", "Giulia", "Chiara", "Maria", "Elena", "Chloé", "Zoë",
    "Jürgen", "Sören", "Björn", "Anaïs", "Renée", "Noël",
)

LAST_NAMES: tuple[str, ...] = (
    "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
    "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
    "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits", "de Graaf", "van der Meer",
    "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen", "van den Heuvel", "van der Veen",
    "van den Broek", "de Bruijn", "de Bruin", "van der Heijden", "Schouten", "van Beek",
    "Willems", "van Vliet", "van de Ven", "Hoekstra", "Maas", "Verhoeven", "Koster", "van Dam",
    "Prins", "Blom", "Huisman", "Peeters", "Maes", "Claes", "Goossens", "Wouters", "De Smet",
    "Dubois", "Lambert", "Dupont", "Martens", "Mertens", "Michiels", "Willaert", "Lemmens",
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
    "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt",
    "Werner", "Krause", "Meier", "Lehmann", "Köhler", "Yılmaz", "Kaya", "Demir", "Şahin",
    "El Amrani", "Bouzid", "Kowalski", "Nowak", "Wiśniewski", "Rossi", "Bianchi", "Ferrari",
    "García", "Martínez", "Silva", "Smith", "Brown", "Taylor", "O'Brien", "Murphy", "Novák",
)

JOB_TITLES: tuple[str, ...] = (
    "Mechanical Engineer", "Design Engineer", "Product Designer", "Purchaser", "Buyer",
    "Procurement Manager", "Production Manager", "Operations Manager", "Owner", "Founder",
    "CEO", "CTO", "Workshop Lead", "Project Manager", "R&D Engineer", "Industrial Designer",
    "Maintenance Engineer", "Prototype Technician", "Architect", "Artist", "Student",
    "Hobbyist", "Maker", "Quality Engineer", "Supply Chain Manager", "Engineering Manager",
)

# Company names are made of a stem and a trade, then a legal form that follows the country.
COMPANY_STEMS: tuple[str, ...] = (
    "Van Dijk", "De Wit", "Noord", "Zuid", "Oost", "West", "Delta", "Polder", "Rijn", "Maas",
    "Schelde", "Kempen", "Veluwe", "Twente", "Brabant", "Holland", "Eifel", "Rhein", "Ruhr",
    "Alpen", "Nordsee", "Vlaanderen", "Ardennen", "Atlas", "Orion", "Vega", "Nova", "Apex",
    "Summit", "Vertex", "Pixel", "Quantum", "Helix", "Fusion", "Zenith", "Horizon", "Stellar",
    "Arcadia", "Falcon", "Beacon", "Keystone", "Bright", "Smart", "Green", "Blue", "Iron",
    "Silver", "Copper", "Granite", "Cedar",
)
COMPANY_TRADES: tuple[str, ...] = (
    "Robotics", "Installatietechniek", "Machinebouw", "Design", "Engineering", "Interieur",
    "Automotive", "Solar", "Systems", "Meubelmakerij", "Stage Design", "Signs", "Lighting",
    "Drones", "Maritime", "Agritech", "Medical", "Audio", "Studio", "Prototyping", "Displays",
    "Klimaattechniek", "Anlagenbau", "Fahrzeugtechnik", "Elektronik", "Architecten", "Bikes",
)
PARTNER_TRADES: tuple[str, ...] = (
    "Lasertechniek", "Plaatbewerking", "Metaalbewerking", "Lasersnijden", "Blechtechnik",
    "Laserschneiden", "Metaalwerken", "Metalworks", "Laser Cutting", "Sheet Metal",
)
LEGAL_FORMS: dict[str, tuple[str, ...]] = {
    "NL": ("B.V.", "B.V.", "B.V.", "V.O.F."),
    "DE": ("GmbH", "GmbH", "GmbH & Co. KG", "AG"),
    "BE": ("BV", "BV", "NV", "CommV"),
}

COUNTRIES: tuple[str, ...] = ("NL", "DE", "BE")
# Mobile prefixes in E.164, each followed by 8 digits (Belgian numbers are made apart).
PHONE_PREFIXES: dict[str, tuple[str, ...]] = {
    "NL": ("+316",),
    "DE": ("+49151", "+49152", "+49157", "+49170", "+49171", "+49176"),
}

# (city, first postal code) per country.
CITIES: dict[str, tuple[tuple[str, int], ...]] = {
    "NL": (
        ("Amsterdam", 1011), ("Rotterdam", 3011), ("Den Haag", 2511), ("Utrecht", 3511),
        ("Eindhoven", 5611), ("Groningen", 9711), ("Tilburg", 5011), ("Almere", 1311),
        ("Breda", 4811), ("Nijmegen", 6511), ("Enschede", 7511), ("Haarlem", 2011),
        ("Arnhem", 6811), ("Zwolle", 8011), ("Leiden", 2311), ("Delft", 2611),
        ("Helmond", 5701), ("Venlo", 5911), ("Apeldoorn", 7311), ("Hengelo", 7551),
    ),
    "DE": (
        ("Düsseldorf", 40210), ("Köln", 50667), ("Duisburg", 47051), ("Essen", 45127),
        ("Dortmund", 44135), ("Aachen", 52062), ("Münster", 48143), ("Hamburg", 20095),
        ("Hannover", 30159), ("Berlin", 10115), ("Stuttgart", 70173), ("München", 80331),
    ),
    "BE": (
        ("Antwerpen", 2000), ("Gent", 9000), ("Brussel", 1000), ("Leuven", 3000),
        ("Brugge", 8000), ("Hasselt", 3500), ("Mechelen", 2800), ("Kortrijk", 8500),
        ("Liège", 4000), ("Namur", 5000),
    ),
}
STREETS: dict[str, tuple[str, ...]] = {
    "NL": (
        "Kerkstraat", "Dorpsstraat", "Schoolstraat", "Molenweg", "Stationsweg", "Industrieweg",
        "Nieuwstraat", "Julianastraat", "Beatrixlaan", "Parallelweg", "Marktplein", "Havenweg",
        "Lindelaan", "Eikenlaan", "Kanaalweg", "Energieweg", "Ambachtsweg", "Zuiderstraat",
    ),
    "DE": (
        "Hauptstraße", "Schulstraße", "Gartenstraße", "Bahnhofstraße", "Dorfstraße",
        "Industriestraße", "Lindenstraße", "Bergstraße", "Kirchstraße", "Gewerbestraße",
        "Ringstraße", "Mühlenweg",
    ),
    "BE": (
        "Kerkstraat", "Stationsstraat", "Molenstraat", "Nieuwstraat", "Rue de la Station",
        "Rue de l'Église", "Industrieweg", "Dorpsstraat", "Kapelstraat", "Steenweg",
    ),
}

PERSONAL_DOMAINS: tuple[str, ...] = (
    "example.com", "example.net", "example.org", "mail.example", "inbox.example",
    "post.example",
)

MATERIALS: tuple[str, ...] = (
    "Steel S235 1 mm", "Steel S235 2 mm", "Steel S235 3 mm", "Steel S355 5 mm",
    "Stainless 304 1 mm", "Stainless 304 1.5 mm", "Stainless 316 2 mm",
    "Aluminium 5754 2 mm", "Aluminium 5754 3 mm", "Aluminium 6082 4 mm",
    "Galvanised steel 1.5 mm", "Corten 2 mm", "Brass 1 mm", "Copper 1.5 mm",
)
CAD_PARTS: tuple[str, ...] = (
    "bracket", "mounting-plate", "flange", "gusset", "spacer", "enclosure-panel", "front-cover",
    "base-plate", "heat-shield", "frame-rail", "lid", "chassis", "hinge-plate", "sign-letter",
    "motor-mount", "shelf-support", "lamp-shade", "bike-dropout", "drone-arm", "nameplate",
)
CAD_EXTENSIONS: tuple[str, ...] = ("dxf", "dxf", "dxf", "dxf", "step", "step", "dwg", "svg")

TICKETS: tuple[tuple[str, str], ...] = (
    ("Where is my order?", "My order has not arrived yet. Can you tell me when it ships?"),
    ("Wrong material delivered", "I ordered stainless 304 but received plain steel parts."),
    ("Invoice address", "Please change the address on my last invoice to our new office."),
    ("Quote question", "Can you cut this part from 6 mm aluminium? The configurator stops at 5."),
    ("Damaged parts", "Two of the ten brackets arrived bent. Photos are attached."),
    ("Change of e-mail", "Please use my new e-mail address for all invoices from now on."),
    ("DXF upload fails", "The upload of my DXF file fails with an error about open contours."),
    ("Delete my account", "Please close my account and remove my personal data."),
    ("VAT on invoice", "Our VAT number is missing on the invoice. Can you send a new one?"),
    ("Bulk pricing", "We need 500 pieces every month. Do you offer a volume discount?"),
    ("Bending service", "Do your partners also bend the parts after cutting?"),
    ("Refund", "I cancelled the order within the hour; when will I get my money back?"),
)

TESTIMONIALS: tuple[str, ...] = (
    "Parts arrived in three days and fitted first time.",
    "The instant quote saves me hours of phone calls every week.",
    "Great finish on the stainless panels, we order here for every prototype.",
    "Fast, cheap and the support team actually knows sheet metal.",
    "Our whole robot chassis is cut by Kerf partners now.",
    "Uploaded a DXF in the evening, had a price in seconds and parts on Friday.",
    "Good quality for a fair price. The bending option is a big plus.",
)

CV_SKILLS: tuple[str, ...] = (
    "Python and PostgreSQL", "customer support in Dutch, English and German",
    "SolidWorks and Fusion 360", "sheet metal design for manufacturing", "B2B sales",
    "logistics planning", "React and TypeScript", "financial administration",
    "quality control in a metal workshop", "online marketing",
)
JOBS_APPLIED: tuple[str, ...] = (
    "Customer Support Agent", "Backend Developer", "Account Manager", "Application Engineer",
    "Finance Assistant", "Partner Manager", "Frontend Developer", "Marketing Specialist",
)

USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
)
PATHS: tuple[str, ...] = (
    "/", "/", "/", "/materials", "/materials/stainless-steel", "/materials/aluminium",
    "/materials/steel", "/pricing", "/how-it-works", "/quote/new", "/quote/new", "/upload",
    "/account", "/account/orders", "/account/invoices", "/account/quotes", "/checkout",
    "/blog/designing-for-laser-cutting", "/blog/tolerances", "/help/file-formats", "/contact",
    "/login", "/signup", "/privacy",
)

IBAN_BANKS: tuple[str, ...] = ("ABNA", "RABO", "INGB", "TRIO", "KNAB", "BUNQ", "SNSB", "ASNB")


def slug(text: str) -> str:
    """Lower-case ASCII letters only: "Müller" -> "mueller", "van den Berg" -> "vandenberg"."""
    text = text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    text = text.replace("Ä", "Ae").replace("Ö", "Oe").replace("Ü", "Ue")
    text = text.replace("ı", "i").replace("ł", "l").replace("ø", "o")
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in plain.lower() if ch.isalnum())
