"""A labelled set for the privacy detector: chat prompts with and without personal data and secrets.

Every row is labelled by construction, not by the detector: a template for one kind gets one synthetic value of
that kind (Faker where it makes values as real ones are, else generated here by the kind's own rules), so the
label is the kind that was put in. Three groups:

- `private`: realistic requests carrying one kind (about 40 rows a kind, some phrased so that a context-based
  detector cannot see it: a name without "my", an address without "I live at", a card number without spaces);
- `ordinary`: everyday requests without personal data, among them questions about public figures and places;
- `near_miss`: text that looks like private data and is not: order numbers, dates and times, version strings,
  git hashes, UUIDs, ISBNs, tracking numbers, private IP addresses, example e-mail addresses, placeholders in
  config, numbers that fail their checksum, public addresses.

    python -m router_training.privacy_set --out router_training/privacy_set.jsonl

Rows: {"id", "group", "prompt", "kinds": [<kind>, ...]} (kinds empty outside `private`). The same seed and Faker
version give the same file.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

SEED = 20261206
PER_KIND = 40
DEFAULT_OUT = Path(__file__).with_name("privacy_set.jsonl")

Maker = Callable[[random.Random], str]


# values: each made as such values really are


def _fakers(seed: int) -> dict:
    from faker import Faker

    fakers = {}
    for locale in ("en_US", "en_GB", "es_ES", "en_IN", "de_DE", "fr_FR", "nl_NL", "it_IT"):
        fake = Faker(locale)
        fake.seed_instance(seed)
        fakers[locale] = fake
    return fakers


def _alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


US_AREA_CODES = ("212", "213", "305", "312", "404", "415", "503", "512", "617", "646", "702", "713", "206", "303")


def phone(rng: random.Random) -> str:
    area, exchange, line = rng.choice(US_AREA_CODES), rng.randint(200, 989), rng.randint(0, 9999)
    forms = (
        f"({area}) {exchange}-{line:04d}",
        f"{area}-{exchange}-{line:04d}",
        f"+1 {area} {exchange} {line:04d}",
        f"{area}.{exchange}.{line:04d}",
        f"07{rng.choice('123457789')}{rng.randint(10, 99)} {rng.randint(100000, 999999)}",  # UK mobile
        f"+44 20 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}",  # London
        f"+49 30 {rng.randint(1000000, 9999999)}",  # Berlin
        f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",  # FR mobile
    )
    return rng.choice(forms)


def nino(rng: random.Random) -> str:
    first, second = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
    while (prefix := rng.choice(first) + rng.choice(second)) in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
        pass
    digits = f"{rng.randint(0, 999999):06d}"
    suffix = rng.choice("ABCD")
    return rng.choice((f"{prefix}{digits}{suffix}", f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"))


def aadhaar(rng: random.Random) -> str:
    """Twelve digits, the first 2-9, the last a Verhoeff check digit (Faker's are random digits)."""
    from hybrid_router.privacy.checksums import verhoeff_valid

    body = str(rng.randint(2, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(10))
    return next(body + digit for digit in "0123456789" if verhoeff_valid(body + digit))


def api_key(rng: random.Random) -> str:
    forms = (
        lambda: "AKIA" + _alnum(rng, 16, string.ascii_uppercase + string.digits),
        lambda: "ghp_" + _alnum(rng, 36),
        lambda: "sk-proj-" + _alnum(rng, 48, string.ascii_letters + string.digits + "_-"),
        lambda: "sk-ant-api03-" + _alnum(rng, 64, string.ascii_letters + string.digits + "_-"),
        lambda: "sk_live_" + _alnum(rng, 24),
        lambda: "AIza" + _alnum(rng, 35, string.ascii_letters + string.digits + "_-"),
        lambda: "xoxb-" + "-".join(str(rng.randint(10**10, 10**11)) for _ in range(2)) + "-" + _alnum(rng, 24),
        lambda: "glpat-" + _alnum(rng, 20),
        lambda: "hf_" + _alnum(rng, 34, string.ascii_letters),
        lambda: "npm_" + _alnum(rng, 36),
    )
    return rng.choice(forms)()


def private_key(rng: random.Random) -> str:
    kind = rng.choice(("RSA ", "EC ", "OPENSSH ", ""))
    body = "\n".join(_alnum(rng, 64, string.ascii_letters + string.digits + "+/") for _ in range(rng.randint(3, 6)))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


def jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(
        json.dumps({"sub": str(rng.randint(10**6, 10**9)), "iat": rng.randint(1_600_000_000, 1_800_000_000)}).encode()
    )
    return f"{header}.{payload}.{_b64url(rng.randbytes(32))}"


def bearer(rng: random.Random) -> str:
    return rng.choice((jwt(rng), _alnum(rng, rng.randint(24, 48), string.ascii_letters + string.digits + "-._")))


def password(rng: random.Random) -> str:
    words = ("Sunflower", "Tiger", "Maple", "Rocket", "Harbor", "Velvet", "Cobalt", "Juniper")
    return rng.choice(
        (
            f"{rng.choice(words)}{rng.randint(10, 9999)}{rng.choice('!#$%&*')}",
            _alnum(rng, rng.randint(10, 20), string.ascii_letters + string.digits + "!@#%^&*"),
            f"{rng.choice(words).lower()}-{rng.choice(words).lower()}-{rng.randint(1, 99)}",
        )
    )


# templates: {v} is the value


PRIVATE: dict[str, list[str]] = {
    "email": [
        "Can you write a polite follow-up email to {v} about the invoice?",
        "My email is {v}, please format a signature block for me.",
        "Reply to {v} and say I can't make it on Thursday.",
        "Is {v} a valid address for the newsletter signup form?",
        "Draft a message to my landlord at {v} about the broken heater.",
        "Add {v} to the CC list and summarize the thread below.\nThe thread: we agreed to move the launch.",
        "contact: {v}\nrole: project lead\nTurn this into a YAML entry for our team file.",
        "Why does Outlook say my messages to {v} bounced?",
    ],
    "phone": [
        "My number is {v}, can you format it for an international business card?",
        "Call me back at {v} when the order is ready - please turn this into a text message.",
        "Write a voicemail greeting that says to reach me on {v}.",
        "The plumber's number is {v}; write a short review of his work.",
        "Is {v} a mobile number or a landline?",
        "Put {v} in the emergency contact field of this form and check the rest.",
        "Text my sister at {v} that dinner is at 7.",
    ],
    "payment_card": [
        "My card is {v}, is it a Visa or a Mastercard?",
        "I was charged twice on card {v}. Write a dispute letter to my bank.",
        "Card number: {v}\nExpiry 09/27\nCVV 123\nWhy was this declined online?",
        "Can you check if {v} is a valid card number?",
        "Use my card {v} to explain how the Luhn check works.",
        "Write an email to the hotel to pay the deposit with {v}.",
    ],
    "iban": [
        "Please pay the rent to IBAN {v} by Friday - write that as a reminder.",
        "My IBAN is {v}, which bank does it belong to?",
        "Write an invoice footer with bank details: IBAN {v}, BIC DEUTDEFF.",
        "Is {v} a valid IBAN?",
        "Transfer 250 EUR to {v} - how long does a SEPA transfer take?",
    ],
    "national_id": [
        "My SSN is {ssn}. Which tax form do I need?",
        "Fill in the form: name redacted, social security number {ssn}.",
        "My National Insurance number is {nino}, how do I check my contributions?",
        "NI number {nino} - write a letter to HMRC about my tax code.",
        "Mi DNI es {dni}, ¿cómo renuevo el pasaporte?",
        "My NIE/DNI is {dni}, translate this rental form into English.",
        "My Aadhaar number is {aadhaar}, how do I link it to my PAN?",
        "Aadhaar {aadhaar} - write an application for a new SIM card.",
    ],
    "ip_address": [
        "Someone keeps logging into my server from {v}. How do I block it with ufw?",
        "My home IP is {v}, write an nginx allow rule for it.",
        "These failed SSH attempts all come from {v} - is that an attack?",
        "Whitelist {v} in the AWS security group, give me the CLI command.",
        "My public address is {v}; why can't my friend reach my Minecraft server?",
    ],
    "street_address": [
        "I live at {street}, {city}, {state} {zip}. Which polling station is mine?",
        "Please ship it to {street}, {city}, {state} {zip} and confirm the delivery date.",
        "My address is {street}. Write a letter to the council about the potholes.",
        "We moved to {street} - write a change of address note for our bank.",
        "Deliver to {street}, {city}, {state} {zip}, leave it with the neighbour.",
        "Our house is at {street}, what's the best way to get to the airport from there?",
        "Can you find a good plumber near {street}, {city}?",  # no cue, no ZIP: a context detector misses it
    ],
    "person_name": [
        "My wife {v} turns 40 next week, give me gift ideas.",
        "Write a resignation letter to my manager {v}.",
        "My son {v} has a fever of 39, should I go to the doctor?",
        "Dear {v},\nThank you for the interview yesterday. Can you polish this email?",
        "Hi, my name is {v} and I need help writing a cover letter.",
        "My colleague {v} keeps taking credit for my work, how do I raise it?",
        "Thanks,\n{v}\n\nFix the grammar in the email above.",
        "Write a birthday poem for {v}, she loves gardening.",  # no cue: a context detector misses it
    ],
    "api_key": [
        "Why does this fail?\nexport API_KEY={v}\ncurl https://api.service.com/v1/models",
        "My key {v} stopped working yesterday, what could be wrong?",
        'client = Client(api_key="{v}")\nThis raises 401, help.',
        "Here is my .env:\nSERVICE_KEY={v}\nDEBUG=true\nWhy isn't it loaded?",
        "Is {v} a valid key format?",
    ],
    "private_key": [
        "My SSH login fails with this key:\n{v}\nWhat's wrong with the permissions?",
        "Convert this key to PEM format please:\n{v}",
        "Is this key RSA or ed25519?\n{v}",
    ],
    "token": [
        "Decode this JWT and tell me when it expires: {jwt}",
        "curl -H 'Authorization: Bearer {bearer}' https://api.internal/v2/users returns 403, why?",
        "My session token is {jwt}, is the signature algorithm secure?",
        "headers = {{'Authorization': 'Bearer {bearer}'}}\nrequests.get(url, headers=headers) times out",
    ],
    "password": [
        "database:\n  host: db.internal\n  user: admin\n  password: {v}\nWhy can't the app connect?",
        "DB_PASSWORD={v}\nHow do I pass this to docker compose securely?",
        'Is "{v}" a strong password?',
        "My wifi password is {v}, write it on a card for guests.",
        "conn = psycopg2.connect('postgresql://app:{v}@10.0.0.5/prod')\nWhy does this hang?",
        '{{"username": "svc", "password": "{v}"}}\nConvert this config to TOML.',
    ],
}

ORDINARY = [
    "What is the capital of {country}?",
    "Explain how {topic} works in simple terms.",
    "Write a Python function that {task}.",
    "Give me a recipe for {dish} for four people.",
    "What are three things to see in {city}?",
    "Summarize the causes of {event}.",
    "Who was {figure} and why are they famous?",
    "What did {figure} say about {topic}?",
    "Write a short poem about {thing}.",
    "How do I {howto}?",
    "Translate 'good morning, how are you?' into {language}.",
    "Compare {topic} and {topic2} for a beginner.",
    "What is {a} times {b}?",
    "Plan a {days}-day trip to {city} on a budget.",
    "Write a haiku in the style of {figure}.",
    "Is it true that {figure} was born in {country}?",
]

COUNTRIES = ("Japan", "Canada", "Kenya", "Peru", "Norway", "Vietnam", "Portugal", "Egypt", "Chile", "Poland")
TOPICS = (
    "public key cryptography", "photosynthesis", "a mortgage", "TCP congestion control", "vaccines",
    "the stock market", "a neural network", "compound interest", "inflation", "garbage collection",
    "DNS", "the immune system", "blockchain", "OAuth", "solar panels",
)  # fmt: skip
TASKS = (
    "reverses a linked list", "parses a CSV file into dictionaries", "checks if a string is a palindrome",
    "merges two sorted lists", "computes the median of a list", "retries an HTTP request with backoff",
    "validates an email address with a regex", "counts word frequencies in a file",
)  # fmt: skip
DISHES = ("lasagne", "pad thai", "shakshuka", "chili con carne", "banana bread", "mushroom risotto")
CITIES = ("Lisbon", "Kyoto", "Mexico City", "Edinburgh", "Cape Town", "Montreal", "Istanbul", "Prague")
EVENTS = ("the French Revolution", "World War I", "the 2008 financial crisis", "the fall of Rome", "the Dust Bowl")
FIGURES = (
    "Albert Einstein", "Marie Curie", "Barack Obama", "Taylor Swift", "Nelson Mandela", "Ada Lovelace",
    "Winston Churchill", "Frida Kahlo", "Elon Musk", "Serena Williams", "Leonardo da Vinci", "Angela Merkel",
    "Martin Luther King Jr.", "Jane Austen", "Alan Turing", "Oprah Winfrey", "Emily Dickinson", "Lionel Messi",
)  # fmt: skip
THINGS = ("the sea at night", "autumn leaves", "a lost umbrella", "morning coffee", "city rain")
HOWTOS = (
    "undo the last git commit", "center a div in CSS", "remove a red wine stain", "change a flat tyre",
    "set up a Python virtual environment", "write a good cover letter", "improve my sleep", "bleed a radiator",
)  # fmt: skip
LANGUAGES = ("French", "German", "Japanese", "Swahili", "Portuguese")

NEAR_MISS: list[Maker] = [
    lambda r: f"My order #{r.randint(10**9, 10**10 - 1)} hasn't arrived, write a complaint to the shop.",
    lambda r: f"Where is order {r.randint(10**15, 10**16 - 1)}? The tracking page is empty.",
    lambda r: f"Invoice no. {r.randint(10**7, 10**8 - 1)} is overdue, draft a polite reminder.",
    lambda r: f"Tracking number 1Z{_alnum(r, 16, string.ascii_uppercase + string.digits)} - when will it arrive?",
    lambda r: (
        f"The meeting moved to {r.randint(2020, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} at "
        f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}. Update the agenda."
    ),
    lambda r: (
        f"Upgrade from version {r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 40)}.{r.randint(0, 200)} "
        "breaks my build, what changed?"
    ),
    lambda r: f"pip install requests=={r.randint(1, 2)}.{r.randint(0, 32)}.{r.randint(0, 9)} fails on Python 3.12",
    lambda r: f"git revert {r.randbytes(20).hex()} says there are conflicts, what now?",
    lambda r: f"Commit {r.randbytes(4).hex()[:7]} introduced a regression in the parser.",
    lambda r: f"The request id {uuid.UUID(int=r.getrandbits(128), version=4)} shows up in every error log line.",
    lambda r: f"Is ISBN {_isbn13(r)} the paperback or the hardcover edition?",
    lambda r: (
        f"My router's admin page is at 192.168.{r.randint(0, 255)}.{r.randint(1, 254)}, what's the default "
        "login for a TP-Link?"
    ),
    lambda r: (
        f"Pods get 10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)} addresses, how do I expose one?"
    ),
    lambda r: "Use jane@example.com as the test user in the signup form fixture.",
    lambda r: "git clone git@github.com:torvalds/linux.git is slow, how can I speed it up?",
    lambda r: "password: ${DB_PASSWORD}\nIs it safe to keep this line in the compose file?",
    lambda r: "db_password = os.environ['DB_PASSWORD'] raises KeyError in production",
    lambda r: "Authorization: Bearer <your-token-here> - where do I get the token?",
    lambda r: "How should I choose a password: something long or something complex?",
    lambda r: f"Calculate {r.randint(1000, 99999)} * {r.randint(1000, 99999)} and explain the steps.",
    lambda r: (
        f"The population grew from {r.randint(10**6, 10**7):,} to {r.randint(10**7, 10**8):,}, what's the growth rate?"
    ),
    lambda r: f"Is {_not_luhn(r)} a valid credit card number?",
    lambda r: "What is the format of a US social security number, like XXX-XX-XXXX?",
    lambda r: "What happens at 1600 Pennsylvania Avenue during an inauguration?",
    lambda r: "Sherlock Holmes lived at 221B Baker Street, was that a real address?",
    lambda r: "My friend loves Taylor Swift, which album should I buy her?",
    lambda r: "Dear diary is a good way to start a journal? Give me tips.",
    lambda r: f"Error 0x{r.randbytes(4).hex().upper()} when installing Windows updates.",
    lambda r: (
        f"My flight LH{r.randint(100, 9999)} on seat {r.randint(1, 40)}{r.choice('ABCDEF')} is delayed, "
        "what are my rights?"
    ),
    lambda r: f"Convert {r.randint(1, 999)}.{r.randint(0, 99)} USD to EUR at a rate of 0.{r.randint(80, 99)}.",
]


# Held out: written after the detector was tuned on the rows above, and never used to change it. Its numbers say
# how the detector does on phrasings it was not shaped by.
HELDOUT_PER_KIND = 10
HELDOUT_PRIVATE: dict[str, list[str]] = {
    "email": [
        "Forward the minutes to {v} and to the finance team.",
        "Her address is {v} - what's a good subject line for a thank-you note?",
        "Unsubscribe {v} from all marketing lists, write the request.",
        "I can't log in with {v}, the reset link never arrives.",
        "cc {v}",
    ],
    "phone": [
        "Reach our office on {v} between 9 and 5 - rewrite this more formally.",
        "The courier called from {v}, is that number a scam?",
        "Save {v} as Mum's number in vCard format.",
        "WhatsApp me at {v} when you land.",
        "tel: {v}",
    ],
    "payment_card": [
        "The shop saved {v} on my account, how do I remove it?",
        "The refund went to {v}, when will I see it?",
        "Is it safe to email card {v} to the travel agent?",
        "{v} exp 11/26 - why does checkout say invalid?",
    ],
    "iban": [
        "Salary should go to {v} from next month, write the note to HR.",
        "Can I receive USD on {v}?",
        "Account: {v}. Fill in the transfer form for me.",
    ],
    "national_id": [
        "Social security # {ssn}, is it needed for the lease application?",
        "HMRC wrote to me about {nino}, what does the letter mean?",
        "Copy my DNI {dni} into the hotel check-in form.",
        "Aadhaar: {aadhaar}. Is e-KYC possible with it?",
        "SSN: {ssn}",
    ],
    "ip_address": [
        "Our VPN exit is {v}, add it to pg_hba.conf.",
        "Geolocate {v} for me.",
        "A port scan came from {v} at 3am, should I worry?",
    ],
    "street_address": [
        "Send the invitation to {street}, {city}, {state} {zip}.",
        "Pick me up at {street} at 8.",
        "My office is at {street}, {city} - how long is the commute from Newark?",
        "Return label: {street}, {city}, {state} {zip}",
    ],
    "person_name": [
        "My daughter {v} is being bullied at school, what should I do?",
        "Our landlord {v} won't return the deposit.",
        "Translate this note to my neighbor {v} into Spanish.",
        "Tell {v} her contract ends in May - write it kindly.",
        "Best regards,\n{v}",
    ],
    "api_key": [
        "Should I rotate {v}? It was pushed to GitHub by mistake.",
        "headers={{'x-api-key': '{v}'}} gives 403.",
        "OPENAI_API_KEY: {v}\nWhy does the SDK ignore it?",
    ],
    "private_key": [
        "Found this in our repo, is it a real key?\n{v}",
        "{v}\nWhich cipher is this key?",
    ],
    "token": [
        "Set-Cookie: session={jwt}; HttpOnly - is this safe?",
        "Authorization: Bearer {bearer}\nWhy 401?",
        "access_token={jwt}&expires_in=3600 - parse this redirect fragment",
    ],
    "password": [
        "smtp_password: {v}\nsmtp_host: mail.internal\nWhy does sending fail?",
        "The admin password is {v} - write onboarding instructions.",
        "mysql -u root -p'{v}' fails with access denied",
        "PGPASSWORD={v} psql -h db -U app - is this insecure?",
    ],
}
HELDOUT_CLEAN = [
    "Who won the 2018 World Cup?",
    "What's Taylor Swift's best album?",
    "Write a letter to the editor about bike lanes in our town.",
    "Dear colleagues, please review the attached agenda - make this more concise.",
    "Hello World program in Rust, please.",
    "Node 18.19.1 vs 20.11.0: what changed in fetch?",
    "docker pull nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31 fails",
    "Segfault at address 0x7ffd5e8c1a20 in libc, how do I debug it?",
    "Why did the 737 MAX 8 get grounded in 2019?",
    "Book meeting room 4B on floor 12 for Tuesday at 10:30.",
    "Should my API listen on port 8080 or 443?",
    "Do US phone numbers always have 10 digits?",
    "My PIN reset didn't work, what should I try?",
    "What is 4111 in binary?",
    "Which card numbers does Stripe give for testing?",
    "Is 90210 the zip code of Beverly Hills?",
    "Why do AWS access keys start with AKIA?",
    "How does a JWT differ from a session cookie?",
    "What is the GDP of Germany in 2023 in USD?",
    "Summarise Martin Luther King's I Have a Dream speech.",
    "Write a limerick about Elon Musk and rockets.",
    "How far is 10 Downing Street from Buckingham Palace?",
    "The Apollo 11 mission launched on 1969-07-16 at 13:32 UTC - describe the launch.",
    "Explain semantic versioning with 2.14.0-rc.1 as an example.",
    "What does HTTP status 503 mean and how is it different from 502?",
    "Convert 1,234,567.89 to scientific notation.",
    "Row 1234 of my CSV has 17 columns instead of 16, how do I find why?",
    "What does `password_hash(PASSWORD_DEFAULT)` do in PHP?",
    "List the prime numbers between 1000 and 1100.",
    "Ticket PROJ-4821 is blocked by PROJ-4799, write a status update.",
    "Explain IPv6 address notation like 2001:db8::1.",
    "How many calories are in 250 g of rice?",
    "Who is the current Secretary-General of the United Nations?",
    "Name three novels by Charles Dickens.",
    "Is 127.0.0.1 the same as localhost?",
    "My package 9400 1000 0000 0000 0000 00 shows delivered but isn't here.",
    "What's the difference between sk-learn and scikit-learn?",
    "Recommend books like The Name of the Wind by Patrick Rothfuss.",
    "Kind regards or best regards - which is more formal?",
    "What's the population of Tokyo in 2024?",
]


def _isbn13(rng: random.Random) -> str:
    digits = [9, 7, 8] + [rng.randint(0, 9) for _ in range(9)]
    check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    body = "".join(map(str, digits + [check]))
    return f"{body[:3]}-{body[3]}-{body[4:7]}-{body[7:12]}-{body[12]}"


def _not_luhn(rng: random.Random) -> str:
    while True:
        digits = "4" + "".join(str(rng.randint(0, 9)) for _ in range(15))
        total = sum(
            (int(c) * 2 - 9 if int(c) > 4 else int(c) * 2) if i % 2 else int(c) for i, c in enumerate(digits[::-1])
        )
        if total % 10:
            return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def _grouped(value: str) -> str:
    compact = value.replace(" ", "")
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _spaced(value: str, rng: random.Random) -> str:
    """A number written in groups of four half of the time (as printed on cards and bank statements)."""
    return _grouped(value) if rng.random() < 0.5 else value.replace(" ", "")


def private_rows(
    rng: random.Random, fakers: dict, templates_by_kind: dict[str, list[str]], per_kind: int
) -> Iterator[tuple[str, str]]:
    us, gb = fakers["en_US"], fakers["en_GB"]
    values: dict[str, Callable[[], dict[str, str]]] = {
        "email": lambda: {"v": rng.choice((us, gb, fakers["de_DE"])).free_email()},
        "phone": lambda: {"v": phone(rng)},
        "payment_card": lambda: {"v": _spaced(us.credit_card_number(), rng)},
        "iban": lambda: {"v": _spaced(fakers[rng.choice(("en_GB", "de_DE", "fr_FR", "nl_NL", "it_IT"))].iban(), rng)},
        "national_id": lambda: {
            "ssn": us.ssn(),
            "nino": nino(rng),
            "dni": fakers["es_ES"].nif(),
            "aadhaar": _grouped(aadhaar(rng)),
        },
        "ip_address": lambda: {
            "v": us.ipv4_public() if rng.random() < 0.8 else f"2a00:1450:4001:{rng.randint(1, 999)}::200e"
        },
        "street_address": lambda: {
            "street": us.street_address(),
            "city": us.city(),
            "state": us.state_abbr(),
            "zip": us.zipcode(),
        },
        "person_name": lambda: {"v": f"{us.first_name()} {us.last_name()}"},
        "api_key": lambda: {"v": api_key(rng)},
        "private_key": lambda: {"v": private_key(rng)},
        "token": lambda: {"jwt": jwt(rng), "bearer": bearer(rng)},
        "password": lambda: {"v": password(rng)},
    }
    for kind, templates in templates_by_kind.items():
        for index in range(per_kind):
            template = templates[index % len(templates)]
            yield kind, template.format(**values[kind]())


def ordinary_rows(rng: random.Random, count: int) -> Iterator[str]:
    for index in range(count):
        template = ORDINARY[index % len(ORDINARY)]
        topic, topic2 = rng.sample(TOPICS, 2)
        yield template.format(
            country=rng.choice(COUNTRIES),
            topic=topic,
            topic2=topic2,
            task=rng.choice(TASKS),
            dish=rng.choice(DISHES),
            city=rng.choice(CITIES),
            event=rng.choice(EVENTS),
            figure=rng.choice(FIGURES),
            thing=rng.choice(THINGS),
            howto=rng.choice(HOWTOS),
            language=rng.choice(LANGUAGES),
            a=rng.randint(2, 999),
            b=rng.randint(2, 999),
            days=rng.randint(2, 10),
        )


def build(seed: int = SEED, ordinary: int = 240, near_misses: int = 180) -> list[dict]:
    rng = random.Random(seed)
    fakers = _fakers(seed)
    rows = [
        {"split": "dev", "group": "private", "prompt": prompt, "kinds": [kind]}
        for kind, prompt in private_rows(rng, fakers, PRIVATE, PER_KIND)
    ]
    rows += [{"split": "dev", "group": "ordinary", "prompt": p, "kinds": []} for p in ordinary_rows(rng, ordinary)]
    rows += [
        {"split": "dev", "group": "near_miss", "prompt": NEAR_MISS[i % len(NEAR_MISS)](rng), "kinds": []}
        for i in range(near_misses)
    ]
    rows += [
        {"split": "heldout", "group": "private", "prompt": prompt, "kinds": [kind]}
        for kind, prompt in private_rows(rng, fakers, HELDOUT_PRIVATE, HELDOUT_PER_KIND)
    ]
    rows += [{"split": "heldout", "group": "near_miss", "prompt": p, "kinds": []} for p in HELDOUT_CLEAN]
    return [{"id": f"privacy/{index:04d}", **row} for index, row in enumerate(rows)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    rows = build(args.seed)
    with args.out.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    groups = Counter(row["group"] for row in rows)
    print(f"wrote {len(rows)} rows to {args.out}: {dict(groups)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
