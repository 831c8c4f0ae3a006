"""Person names and street addresses, only where the context makes them private.

A name counts after a cue that ties it to the user's own life ("my name is", "my wife", "my colleague", "patient",
a letter's "Dear ..." or its signature); a street address after "I live at", "my address", "ship to" and the like,
or when it is written in full with a US ZIP code or a UK postcode. "Who is Barack Obama?" or "How tall is the
Empire State Building at 350 Fifth Avenue?" name public people and places, and are not reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hybrid_router.privacy.kinds import Finding, PrivacyKind

_NAME = r"(?:[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?|[A-Z]\.)"
_FULL_NAME = rf"({_NAME}(?: {_NAME}){{0,2}})"
_RELATIONS = (
    r"wife|husband|son|daughter|mother|mom|mum|father|dad|brother|sister|friend|boss|colleague|co-?worker|"
    r"manager|neighbou?r|partner|girlfriend|boyfriend|fianc[eé]e?|grandmother|grandfather|grandma|grandpa|aunt|"
    r"uncle|cousin|nephew|niece|patient|client|tenant|landlord|employee|student|teacher|therapist|roommate|"
    r"kid|child|baby|stepson|stepdaughter|ex|assistant|supervisor|doctor|lawyer|accountant"
)
_NAME_CUES = re.compile(
    rf"(?:\b(?:[Mm]y|[Oo]ur) (?:{_RELATIONS})(?:'s name is|,| named| called| is called|:)? "
    rf"|\b(?:[Mm]y (?:full |real |legal )?name is|[Mm]y name's|[Cc]all me|[Ii]'m called|[Pp]atient(?: name)?:?) "
    rf"|^[ \t]*(?:[Dd]ear|[Hh]i|[Hh]ello) (?:(?:Mr|Mrs|Ms|Dr|Prof)\.? )?"
    rf"|\b(?:[Ff]ull name|[Nn]ame|[Cc]ustomer|[Ee]mployee|[Cc]ardholder|[Aa]ccount holder)\s*:\s*"
    rf"|^[ \t]*(?:(?:[Kk]ind |[Bb]est |[Ww]arm )?[Rr]egards|[Bb]est|[Tt]hanks|[Cc]heers|[Ss]incerely|[Yy]ours),?\s*\n\s*"
    rf"){_FULL_NAME}",
    re.MULTILINE,
)
# Capitalised words that follow such cues without being names.
_NOT_NAMES = {
    "I", "The", "A", "An", "He", "She", "They", "We", "It", "His", "Her", "Their", "Is", "Was", "Has", "Had", "Will",
    "Can", "And", "But", "Or", "So", "If", "When", "What", "Who", "Why", "How", "Where", "Which", "This", "That",
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January", "February", "March",
    "April", "May", "June", "July", "August", "September", "October", "November", "December", "Team", "All",
    "Everyone", "There", "Sir", "Madam", "Customer", "Support", "Hiring", "Manager", "Not", "Just", "Also",
    "English", "French", "German", "Spanish", "Chinese", "American", "British", "Python", "Java", "Excel", "Google",
    "World", "Everybody", "Folks", "Guys", "Again", "Friends", "Colleagues",
}  # fmt: skip

# Street types: the USPS suffixes (Publication 28, appendix C1), singular and plural, with their abbreviations,
# and a few British and German ones.
_STREET_TYPES = (
    r"Alley|Aly|Annex|Arcade|Avenue|Ave|Bayou|Beach|Bend|Bluffs?|Bottom|Boulevard|Blvd|Branch|Bridge|Brooks?|"
    r"Burgs?|Bypass|Camp|Canyon|Cape|Causeway|Centers?|Ctr|Circles?|Cir|Cliffs?|Club|Commons?|Corners?|Course|"
    r"Courts?|Ct|Coves?|Creek|Crescent|Crest|Crossing|Crossroads?|Curve|Dale|Dam|Divide|Drives?|Dr|Estates?|"
    r"Expressway|Expy|Extensions?|Falls?|Ferry|Fields?|Flats?|Fords?|Forests?|Forges?|Forks?|Fort|Freeway|Fwy|"
    r"Gardens?|Gateway|Glens?|Greens?|Groves?|Harbors?|Haven|Heights|Hts|Highway|Hwy|Hills?|Hollow|Inlet|Islands?|"
    r"Isle|Junctions?|Keys?|Knolls?|Lakes?|Land|Landing|Lane|Ln|Lights?|Loaf|Locks?|Lodge|Loop|Mall|Manors?|"
    r"Meadows?|Mews|Mills?|Mission|Motorway|Mount|Mountains?|Neck|Orchard|Oval|Overpass|Parks?|Parkways?|Pkwy|"
    r"Pass|Passage|Path|Pike|Pines?|Place|Pl|Plains?|Plaza|Points?|Ports?|Prairie|Radial|Ramp|Ranch|Rapids?|Rest|"
    r"Ridges?|River|Roads?|Rd|Route|Row|Rue|Run|Shoals?|Shores?|Skyway|Springs?|Spurs?|Squares?|Sq|Station|"
    r"Stravenue|Stream|Streets?|St|Summits?|Terrace|Ter|Throughway|Trace|Track|Trafficway|Trail|Trl|Trailer|"
    r"Tunnel|Turnpike|Underpass|Unions?|Valleys?|Via|Viaduct|Views?|Villages?|Ville|Vista|Walks?|Wall|Ways?|Wells?|"
    r"Close|Grove|Strasse|Straße|Weg"
)
_STREET = re.compile(
    rf"\b\d{{1,6}}[A-Za-z]?,? (?:[A-Z][A-Za-z'-]+\.? ){{1,3}}(?:{_STREET_TYPES})\b\.?"
    r"(?: (?:Apt|Suite|Unit|Flat)\.? ?#?\w+)?"
)
_ADDRESS_CUE = re.compile(
    r"(?:\bi live (?:at|on)|\blive at|\bmy (?:home |street |mailing |postal |shipping |billing |new |current )?"
    r"address(?: is)?:?|\bship (?:it |this |them )?to|\bdeliver(?: it| this| them)? to|\bsend (?:it|this|them) to|"
    r"\bmail (?:it |this )?to|\bour (?:house|home|flat|apartment)(?: is)? (?:at|on)|\bmoved to|\baddress\s*:|"
    r"\bresid(?:e|es|ing) at)\s*$",
    re.IGNORECASE,
)
_POSTAL_TAIL = re.compile(
    r",?\s*(?:[A-Z][A-Za-z .'-]{0,60},\s*)?"
    r"(?:[A-Z]{2}\s+\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})\b"
)


def person_names(text: str) -> Iterator[Finding]:
    for match in _NAME_CUES.finditer(text):
        words = match.group(1).split(" ")
        while words and words[-1] in _NOT_NAMES:  # "my friend Anna The" -> "Anna"
            words.pop()
        if not words or words[0] in _NOT_NAMES or words[0].endswith("."):
            continue
        start = match.start(1)
        yield Finding(PrivacyKind.PERSON_NAME, start, start + len(" ".join(words)))


def street_addresses(text: str) -> Iterator[Finding]:
    for match in _STREET.finditer(text):
        tail = _POSTAL_TAIL.match(text, match.end())
        if tail or _ADDRESS_CUE.search(text[max(match.start() - 60, 0) : match.start()]):
            yield Finding(PrivacyKind.STREET_ADDRESS, match.start(), tail.end() if tail else match.end())
