"""The privacy detector: each kind is found, near-misses are not, values never leave through the result, and a
failing recognizer makes the prompt private (fail closed). Redaction puts values back, also across streamed pieces."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("phonenumbers")

from hybrid_router.privacy import Detector, PrivacyKind, Redaction, detect, parse_kinds  # noqa: E402
from hybrid_router.privacy.checksums import card_valid, iban_valid, luhn_valid, verhoeff_valid  # noqa: E402

K = PrivacyKind

FOUND = [
    ("my card is 4111 1111 1111 1111", K.PAYMENT_CARD),
    ("charge 5500-0000-0000-0004 please", K.PAYMENT_CARD),
    ("amex 378282246310005 exp 04/27", K.PAYMENT_CARD),
    ("Pay to IBAN GB82 WEST 1234 5698 7654 32 today", K.IBAN),
    ("iban: DE89370400440532013000", K.IBAN),
    ("my SSN is 123-45-6789", K.NATIONAL_ID),
    ("ssn 123456789 for the form", K.NATIONAL_ID),
    ("NI number AB 12 34 56 C", K.NATIONAL_ID),
    ("DNI 12345678Z", K.NATIONAL_ID),
    ("my SIN is 130 692 544", K.NATIONAL_ID),
    ("Aadhaar 2345 6789 0124", K.NATIONAL_ID),
    ("write to jane.doe@gmail.com about it", K.EMAIL),
    ("call me on +44 20 7946 0958 after six", K.PHONE),
    ("my cell is (415) 555-2671", K.PHONE),
    ("the attacker came from 8.8.4.4 twice", K.IP_ADDRESS),
    ("block 2001:4860:4860::8888 at the firewall", K.IP_ADDRESS),
    ("export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz123456", K.API_KEY),
    ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", K.API_KEY),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", K.API_KEY),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----", K.PRIVATE_KEY),
    ("curl -H 'Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0'", K.TOKEN),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", K.TOKEN),
    ("db:\n  user: app\n  password: Tr0ub4dor&3\n", K.PASSWORD),
    ('{"client_secret": "q8Zr2LmN0pXw"}', K.PASSWORD),
    ("postgres://admin:s3cr3tpw@db.internal:5432/app", K.PASSWORD),
    ("My wife Anna Schmidt needs a birthday gift idea", K.PERSON_NAME),
    ("Hi, my name is Priya and I need help", K.PERSON_NAME),
    ("Dear Mr. Johnson,\nplease find attached", K.PERSON_NAME),
    ("I live at 42 Maple Street, where is the nearest gym?", K.STREET_ADDRESS),
    ("ship it to 12 Oak Lane, Springfield, IL 62704", K.STREET_ADDRESS),
]

NEAR_MISSES = [
    "Order #4155552671 hasn't arrived yet",
    "Where is order 1234567890123456?",
    "Upgrade from version 1.2.3.4 to 2.0",
    "My router is at 192.168.1.1 and the DNS at 10.0.0.53",
    "Use user@example.com in the docs and git@github.com:me/repo.git to clone",
    "commit a3f5c9e1b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2 broke the build",
    "uuid 123e4567-e89b-12d3-a456-426614174000 is the request id",
    "ISBN 978-0-306-40615-7, published 2024-05-06",
    "The meeting is on 2024-11-03 at 14:30:00",
    "password = os.environ['DB_PASSWORD']",
    "password: ${DB_PASSWORD}",
    "Choose a password: something long and memorable",
    "Authorization: Bearer <token>",
    "Who was Albert Einstein and what did he discover?",
    "Hello World in Go, please",
    "What did Barack Obama say about healthcare in 2010?",
    "How tall is the Empire State Building at 350 Fifth Avenue?",
    "Sherlock Holmes lived at 221B Baker Street",
    "My friend loves Taylor Swift songs",
    "Calculate 12345 * 6789 and 3.14159 squared",
    "SSN format is XXX-XX-XXXX, e.g. 000-12-3456",
    "SIN 046 454 286 is the example number (0 is never issued)",
    "The IBAN format starts with a country code like DE",
]


@pytest.mark.parametrize(("text", "kind"), FOUND)
def test_each_kind_is_found_and_the_result_names_only_the_kind(text: str, kind: PrivacyKind) -> None:
    detection = detect([text])
    assert kind in detection.kinds
    assert detection.reason.startswith("privacy:")
    assert detection.names()[0] == detection.reason.removeprefix("privacy:")
    for item in detection.locations:  # offsets, never text
        assert isinstance(item.finding.start, int) and isinstance(item.finding.end, int)


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_not_private(text: str) -> None:
    assert detect([text]).kinds == frozenset()


def test_every_message_of_the_conversation_is_read() -> None:
    detection = detect(["You are helpful.", "my email is bob.smith@fastmail.fm", "Noted.", "what did I say?"])
    assert detection.kinds == {K.EMAIL}
    assert detection.locations[0].message == 1


def test_the_reason_names_the_most_severe_kind() -> None:
    detection = detect(["mail jane@corp.io the card 4111111111111111 and key AKIAIOSFODNN7EXAMPLE"])
    assert detection.kinds == {K.EMAIL, K.PAYMENT_CARD, K.API_KEY}
    assert detection.reason == "privacy:api_key"
    assert detection.names() == ["api_key", "payment_card", "email"]


def test_a_failing_recognizer_makes_the_prompt_private() -> None:
    def broken(text: str):
        raise RuntimeError("boom")
        yield

    detection = Detector(recognizers=[broken]).detect(["nothing private here"])
    assert detection.kinds == {K.DETECTOR_ERROR}
    assert detection.reason == "privacy:detector_error"
    assert detection.locations == ()


def test_triggers_choose_which_found_kinds_make_a_prompt_private() -> None:
    detector = Detector(triggers=parse_kinds(["payment_card"]))
    detection = detector.detect(["write to jane@corp.io"])
    assert detection.found == {K.EMAIL} and detection.kinds == frozenset()
    assert detector.detect(["4111 1111 1111 1111"]).kinds == {K.PAYMENT_CARD}


def test_an_unknown_kind_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown privacy kind 'credit_card'; valid kinds: detector_error"):
        parse_kinds(["credit_card"])


def test_checksums() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert card_valid("4111111111111111") and not card_valid("4111111111111112")
    assert not card_valid("9111111111111111")  # no issuer starts with 9
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82WEST1234569876543")  # one character short for GB
    assert verhoeff_valid("2363") and not verhoeff_valid("2364")


def test_redaction_replaces_each_value_and_restores_the_answer() -> None:
    texts = ["I'm jane@corp.io", "card 4111 1111 1111 1111, again jane@corp.io"]
    redaction = Redaction(texts, detect(texts))
    assert redaction.texts == ["I'm [EMAIL_1]", "card [PAYMENT_CARD_1], again [EMAIL_1]"]
    assert (
        redaction.restore("Sent to [EMAIL_1]; [PHONE_9] is not ours") == "Sent to jane@corp.io; [PHONE_9] is not ours"
    )


def test_a_placeholder_split_across_streamed_pieces_is_restored() -> None:
    texts = ["reach me at jane@corp.io"]
    redaction = Redaction(texts, detect(texts))

    def pieces():
        yield from ["I will write to [EM", "AIL", "_1] now, [", "not a placeholder"]
        return "usage"

    restored = redaction.restore_stream(pieces())
    out = []
    while True:
        try:
            out.append(next(restored))
        except StopIteration as stop:
            assert stop.value == "usage"
            break
    assert "".join(out) == "I will write to jane@corp.io now, [not a placeholder"


@pytest.mark.parametrize(
    "text",
    [
        "1." * 100_000,  # a run the password pattern could start in at every dot
        "\n" * 200_000,  # a run the letter greeting pattern could start in at every line
        "a://" * 50_000,
        "-----BEGIN PRIVATE KEY-----" * 5_000,
        "a@" * 100_000,
        "eyJ" * 70_000,
    ],
)
def test_hostile_text_takes_time_in_proportion_to_its_length(text: str) -> None:
    """200 KB of text built to make a pattern backtrack or rescan is read in about 0.1 s (seconds allowed for a busy
    machine); a quadratic pattern took minutes."""
    began = time.perf_counter()
    detect([text])
    assert time.perf_counter() - began < 3.0


def test_a_private_conversation_leaves_the_device_only_redacted() -> None:
    from hybrid_router.privacy import PrivacyCheck, PrivacyMode
    from hybrid_router.privacy.screen import PrivateDataKept

    texts = ["be brief", "my card is 4111 1111 1111 1111"]
    messages = [{"role": "system", "content": texts[0]}, {"role": "user", "content": texts[1]}]
    redacted = PrivacyCheck.of(texts, 1, PrivacyMode.REDACT, Detector())
    assert redacted.redacts and not redacted.keeps_local
    assert redacted.outgoing(messages)[1] == {"role": "user", "content": "my card is [PAYMENT_CARD_1]"}
    assert redacted.safe_text() == "my card is [PAYMENT_CARD_1]"
    kept = PrivacyCheck.of(texts, 1, PrivacyMode.LOCAL, Detector())
    assert kept.keeps_local and kept.reason == "privacy:payment_card"
    with pytest.raises(PrivateDataKept):
        kept.outgoing(messages)
    plain = PrivacyCheck.of(["be brief", "hello"], 1, PrivacyMode.LOCAL, Detector())
    assert plain.outgoing(messages) is messages and plain.kinds == [] and plain.safe_text() == "hello"


def test_phone_regions_decide_how_a_number_without_a_country_code_is_read() -> None:
    from hybrid_router.privacy.detector import recognizers_for

    text = ["ruf mich an: 0171 2345678"]  # a German mobile number, not a valid US or UK one
    assert detect(text).kinds == frozenset()
    assert Detector(recognizers=recognizers_for(["de"])).detect(text).kinds == {K.PHONE}
    assert detect(["call +49 171 2345678"]).kinds == {K.PHONE}  # with its country code, always
    with pytest.raises(ValueError, match=r"ISO 3166 country codes .* got \['XX'\]"):
        recognizers_for(["US", "XX"])
