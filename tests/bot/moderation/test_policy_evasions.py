"""The policy gate against a hostile reader: spellings the sets do not hold, and harmless English it must not refuse."""

import pytest

from bot.moderation.policy import MAX_PROMPT_CHARS, Denylist, DenylistEntry, PolicyGate, normalise


@pytest.mark.parametrize("text", ["a spice market in Marrakesh", "spices on a wooden table", "spiced apple cider",
                                  "a chef spicing a curry", "a rapier duel on a castle stair",
                                  "a rapper who raps on a rooftop"])
def test_english_words_no_spelling_rule_inflects_from_a_listed_word_are_allowed(gate, text):
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize("text", ["a raped woman", "massacring villagers", "a stabbing in an alley",
                                  "dead bodies on a street"])
def test_the_spelling_rules_still_read_inflections_of_listed_words(denylist, text):
    assert denylist.match(text) is not None


@pytest.mark.parametrize("text", ["China's Great Wall at sunrise", "Tim's birthday party in a garden",
                                  "Niagara's falls in winter", "pork's price at a market", "a rapper's gold chain",
                                  "an investor'll ring the bell"])
def test_a_possessive_or_contraction_is_no_disguise_that_licenses_an_edit(gate, text):
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize("text", ["a nude's portrait", "porn's biggest star", "a p0rn's poster", "the kkk's rally"])
def test_a_listed_word_with_a_possessive_is_still_refused(denylist, text):
    assert denylist.match(text) is not None


@pytest.mark.parametrize("text", ["a 🅳🅴🅴🅿🅵🅰🅺🅴 video of a politician", "a 🅓🅔🅔🅟🅕🅐🅚🅔 video of a politician",
                                  "a 🇩​🇪​🇪​🇵​🇫​🇦​🇰​🇪 video of a politician", "a 🅽 🆄 🅳 🅴 woman"])
def test_enclosed_letters_that_nfkc_leaves_are_read_as_the_letters_discord_shows(gate, text):
    assert gate.check_prompt(text).reason == "denylist"


def test_an_enclosed_letter_emoji_in_a_harmless_prompt_is_still_allowed(gate):
    assert gate.check_prompt("a 🅿️ parking sign in the rain").allowed


@pytest.mark.parametrize("text", ["NASA rocket launch at dawn", "UFO over a farm at night", "FBI agents in a car",
                                  "USA flag waving in the wind"])
def test_an_abbreviation_that_begins_a_prompt_is_a_name_not_a_word_of_another_language(gate, text):
    verdict = gate.check_prompt(text)
    assert verdict.allowed, verdict.message


@pytest.mark.parametrize("text", ["PERRO corriendo en la playa", "UN PERRO GRANDE", "ABUELA cooking in a kitchen"])
def test_words_of_another_language_in_capitals_are_still_refused(gate, text):
    assert gate.check_prompt(text).reason == "not_english"


def test_the_refusal_for_a_real_person_is_one_grammatical_line(gate):
    verdict = gate.check_prompt("Barack Obama dancing in the rain")
    assert verdict.message == ("Your prompt was refused under the content policy: a realistic depiction of a real "
                               "person is not allowed. Please describe something else.")


def test_a_phrase_over_a_letter_spaced_prompt_is_matched_in_few_steps_not_every_reading(monkeypatch):
    # was: a moderator's 'aaaa* aaaa* aaaa* wxyz' over 'a a a …' (500 characters) took 14 s on the event loop, every
    # way of reading the spaced letters as words of many lengths tried for each phrase term (5 terms: over 100 s)
    from bot.moderation.policy import denylist as module

    calls, phrase_end = [0], module._phrase_end

    def counted(*args, **kwargs):
        calls[0] += 1
        assert calls[0] < 100_000, "the phrase's readings are tried one by one"
        return phrase_end(*args, **kwargs)

    monkeypatch.setattr(module, "_phrase_end", counted)
    listed = Denylist([DenylistEntry("aaaa* aaaa* aaaa* aaaa* wxyz", "violence")])

    assert listed.match("a " * 250) is None
    assert calls[0] < 100_000  # about 30,000: each (terms left, position) answered once


@pytest.mark.parametrize("text", ["a piñata", "a pinata", "a jalapeño", "a jalapeno", "a matinee show",
                                  "a soufflé", "a protege"])
def test_loanwords_english_writes_with_an_accent_are_english_with_or_without_it(gate, text):
    # was: "a piñata" refused as not English: pyspellchecker lists accented loanwords at a count below the bar
    verdict = gate.check_prompt(text)
    assert verdict.allowed, verdict.message


def test_a_loanword_is_no_cover_for_a_foreign_sentence(gate):
    assert gate.check_prompt("una piñata grande para la fiesta de mi hermano").reason == "not_english"


def test_turned_and_reversed_letters_of_upside_down_text_fold_to_the_letter_they_are_drawn_from():
    assert normalise("ǝ ɘ Ǝ ɐ ʇ ɹ ʎ ʞ ᴉ ɥ ↄ ɔ ə ɛ") == "e e e a t r y k i h c c e e"


@pytest.mark.parametrize("text", ["a nudɘ woman", "a nudǝ woman", "a NUDƎ woman", "a ʇits show", "a ʇopless dancer",
                                  "a ɔhink", "a nudə model"])
def test_a_listed_word_spelled_with_a_turned_or_reversed_letter_is_refused(gate, text):
    assert gate.check_prompt(text).reason == "denylist"


@pytest.mark.parametrize("text", ["🇳🇺🇩🇪 flags waving over a harbour", "a 🇳🇺🇩🇪 banner at a football match",
                                  "flags 🇺🇸🇨🇦🇲🇽 of north america", "a 🇸🇪🇽 flag and an x on a map"])
def test_flags_next_to_each_other_are_flags_not_the_letters_their_indicators_spell(gate, text):
    # was: 🇳🇺🇩🇪 (Niue, Germany) read as "nude" and refused
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize("text", ["a 🇳 🇺 🇩 🇪 woman", "🇹🇮🇹🇸 on a beach", "a 🇵🇴🇷🇳 video", "🇳🇺🇩🇪 and 🇳 🇺 🇩 🇪"])
def test_regional_indicators_shown_as_letters_still_spell_words(gate, text):
    # spaced out, or paired into no flag (TI, TS; PO, RN), each indicator shows as its letter; a pair that is no flag
    # ends the flags of a run: a renderer that looks for flags anywhere shows T, 🇮🇹, S
    assert gate.check_prompt(text).reason == "denylist"


def _zalgo(text: str, marks: int) -> str:
    """text with `marks` combining marks stacked on each character, cycling through the combining diacritics."""
    return "".join(c + "".join(chr(0x300 + (i + j) % 0x70) for j in range(marks)) for i, c in enumerate(text))


def test_a_prompt_of_letters_under_stacks_of_marks_is_refused_in_one_line_naming_the_stack():
    asked = []
    gate = PolicyGate(is_english=lambda text: asked.append(text) or True)
    verdict = gate.check_prompt(_zalgo("a cat in a garden at night", 12)[:MAX_PROMPT_CHARS])
    assert (verdict.reason, verdict.logged) == ("invalid", "invalid:characters")
    assert verdict.message == ("Your prompt has 12 accent marks stacked on one character (“a”); a character takes at "
                               "most 4. Please type it again without them.")
    assert asked == []  # refused before any language model reads it


def test_a_listed_word_under_stacks_of_marks_is_refused_for_the_content_policy(gate):
    verdict = gate.check_prompt(_zalgo("a nude woman", 30)[:MAX_PROMPT_CHARS])
    assert (verdict.reason, verdict.matched) == ("denylist", "nude")


@pytest.mark.parametrize("text", ["a bowl of pho\u031b\u0309 in Hanoi", "cre\u0300me bru\u0302le\u0301e on a plate",
                                  "a #\ufe0f\u20e3 sign on a wall"])
def test_letters_with_the_marks_languages_write_are_no_stack(gate, text):
    verdict = gate.check_prompt(text)
    assert verdict.allowed, verdict.message


@pytest.mark.parametrize("text", ["moles at night in a garden", "a gore point where the highway splits",
                                  "gore points on a motorway from a drone", "a naked flame in a dark room",
                                  "chinks of light through a barn wall", "a chink of light under the door"])
def test_everyday_phrases_with_a_listed_word_in_another_sense_are_allowed(gate, text):
    # was: refused as molest* (joined "molesat", one letter dropped), gore or al gore, naked, chink
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize(("text", "entry"), [
    ("a man molesting a child", "molest*"), ("a mole st a child", "molest*"), ("gore at a gore point", "gore"),
    ("a gory scene", "gory"), ("al gore at a gore point", "al gore"), ("a naked flamenco dancer", "naked"),
    ("a naked woman by a naked flame", "naked"), ("a naked woman", "naked"), ("a chink of a man", "chink"),
    ("chinks of light and a chink", "chink")])
def test_the_listed_words_of_those_phrases_are_still_refused_in_their_harmful_sense(gate, text, entry):
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", entry)


def test_a_word_that_stands_alone_joins_a_neighbour_as_written_only_never_with_an_edit():
    listed = Denylist([DenylistEntry("molest*", "sexual"), DenylistEntry("al gore", "real_person")])
    assert listed.match("moles at night") is None and listed.match("a gore on a skirt") is None
    assert listed.match("mo lesting") is not None and listed.match("mole st") is not None
    assert listed.match("al gore") is not None and listed.match("algore") is not None


@pytest.mark.parametrize("text", [
    "a naked bulb hanging in a cellar", "naked bulbs over a bar", "a naked light bulb swinging in the wind",
    "a naked lightbulb in a stairwell", "a naked wire sparking in the rain", "naked branches in winter",
    "naked trees against a grey sky", "the chink of glasses at a party", "the chink of coins in a purse",
    "the chink of ice in a glass", "a gore of land between two fields", "gores of land by a river",
    "a gore of fabric on a tailor's table", "a gored skirt twirling on a dance floor"])
def test_listed_words_in_their_everyday_senses_of_bare_a_ringing_sound_and_a_wedge_are_allowed(gate, text):
    # was: refused as naked, chink, gore
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize(("text", "entry"), [
    ("a naked woman under a naked bulb", "naked"), ("a naked bulb and a naked man", "naked"),
    ("a naked bulbous woman", "naked"), ("a n*ked bulb", "naked"), ("a nak3d bulb", "naked"),
    ("a naked treehouse party", "naked"), ("the gore of war", "gore"), ("gore of land and gore", "gore"),
    ("a chink with glasses", "chink"), ("the chink of glasses and a chink", "chink"), ("a chink of a man", "chink")])
def test_the_listed_words_beside_those_phrases_are_still_refused(gate, text, entry):
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", entry)


@pytest.mark.parametrize("text", ["a naked flame-haired woman", "a naked tree-hugging man", "a naked bulb-shaped girl",
                                  "a half-naked flame"])
def test_an_allowed_phrase_that_begins_or_ends_inside_a_compound_protects_nothing(gate, text):
    # was: allowed, "naked flame" covering the listed word that describes the woman
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", "naked")


@pytest.mark.parametrize("text", ["a naked-flame lamp in a tent", "a gore-tex jacket on a hook", "a blue-tit feeder"])
def test_an_allowed_phrase_written_as_one_compound_still_protects(gate, text):
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize("text", [
    "the chink of cutlery in a busy restaurant", "a chink in the curtains at dawn", "chinks in the shutters at noon",
    "a chink between the curtains", "a chink in the fence of a garden", "the chink of teacups on saucers",
    "the chink of keys on a ring", "the chink of spoons and crockery", "the chink of bottles in a crate"])
def test_a_chink_as_a_narrow_gap_in_a_named_thing_or_the_ringing_of_a_named_thing_is_allowed(gate, text):
    # was: refused as chink (only "chink of light", "in the armour" and the ringing of glass, coin and ice were listed)
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize(("text", "entry"), [
    ("a chink in the kitchen", "chink"), ("a chink in the doorway", "chink"), ("a chink in the street", "chink"),
    ("chinks in the streets of a city", "chinks"), ("the chink of cutlery and a chink", "chink"),
    ("a ch1nk in the curtains", "chink"), ("a c h i n k in the wall", "chink")])
def test_a_chink_in_a_place_a_person_stands_or_disguised_beside_a_gap_is_still_refused(gate, text, entry):
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", entry)


@pytest.mark.parametrize("text", ["a gore-tex-lined jacket", "a gore tex-lined jacket",
                                  "gore-tex-lined boots on a trail", "a man in a gore-tex-lined hood"])
def test_an_allowed_name_written_as_one_compound_protects_inside_a_longer_compound(gate, text):
    # was: refused as gore, "gore tex" ending inside "gore-tex-lined" like "naked flame" inside "flame-haired"
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize(("text", "entry"), [
    ("a naked-flame-haired woman", "naked"), ("a naked bulb-lit woman", "naked"), ("a naked flame-lit woman", "naked"),
    ("a gore-tex-lined jacket covered in gore", "gore"), ("gore everywhere and a gore-tex-lined jacket", "gore")])
def test_a_phrase_of_an_adjective_and_its_noun_still_protects_nothing_inside_a_longer_compound(gate, text, entry):
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", entry)


def test_only_an_allowlist_entry_written_with_its_hyphens_is_one_compound():
    gore = DenylistEntry("gore", "violence")
    joined = Denylist([gore, DenylistEntry("gore-tex", "allow", "allow")])
    spaced = Denylist([gore, DenylistEntry("gore tex", "allow", "allow")])
    assert joined.match("a gore-tex-lined jacket") is None and joined.match("a gore tex jacket") is None
    assert joined.match("a gore-tex-clad man") is None and spaced.match("a gore-tex-clad man") == gore
    # was: refused as gore by a list that writes "gore tex" with a space; a compound ends it only before a person
    assert spaced.match("a gore-tex-lined jacket") is None and spaced.match("a gore tex jacket") is None


@pytest.mark.parametrize("text", ["a pussy cat loving woman", "a pussy cat-loving woman", "a pussy cat lover",
                                  "a pussy cat loving old man with a garden"])
def test_an_allowed_phrase_english_writes_as_one_word_protects_before_a_compound_and_a_person(gate, text):
    # was: refused as pussy, "pussy" taken for an adjective that "cat loving" left describing the woman
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize("text", ["a pussy loving woman", "a pussy cat loving pussy", "a pussy willow loving woman"])
def test_the_listed_word_outside_a_closed_compound_or_in_a_phrase_written_open_is_still_refused(denylist, text):
    assert denylist.match(text) is not None


def test_only_an_allowlist_phrase_english_writes_as_one_word_is_a_closed_compound():
    naked = DenylistEntry("naked", "sexual")
    closed = Denylist([DenylistEntry("pussy", "sexual"), DenylistEntry("pussy cat", "allow", "allow")])
    opened = Denylist([naked, DenylistEntry("naked flame", "allow", "allow")])
    assert closed.match("a pussy cat loving woman") is None and closed.match("a pussy cat lover") is None
    assert opened.match("a naked flame loving woman") == naked and opened.match("a naked flame lover") == naked


@pytest.mark.parametrize("text", ["a naked flame haired woman", "a naked tree hugging man", "a naked bulb shaped girl",
                                  "a naked flame lit woman", "a naked flame haired young woman"])
def test_an_allowed_phrase_before_a_compound_written_with_a_space_protects_nothing(gate, text):
    # was: allowed, "naked flame" covering the listed word that describes the woman, as before "flame-haired" it did
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", "naked")


@pytest.mark.parametrize("text", ["a naked flame in the dark", "the naked flame of a candle",
                                  "a naked flame flickering in the dark", "a naked bulb hanging low over a table",
                                  "the naked flame burned brightly", "a naked flame flickered and died",
                                  "the chink of glasses during dinner", "a gore tex lined jacket"])
def test_an_allowed_phrase_followed_by_its_verb_or_a_named_compound_still_protects(gate, text):
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize("text", ["naked branches reaching skyward", "a naked flame burning bright",
                                  "the naked flame lit candles", "a naked bulb ceiling lamp", "a naked bulb lit cellar",
                                  "a naked bulb-lit cellar", "a naked bulb lit room where a woman sleeps",
                                  "the naked flame lit candles for a girl"])
def test_an_allowed_phrase_before_a_compound_that_describes_no_person_still_protects(gate, text):
    # was: refused as naked, the compound ("flame burning bright", "bulb lit cellar") taken for one before a person
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize("text", [
    "a naked flame haired pale young woman", "a naked tree hugging couple", "a naked tree hugging teens",
    "a naked flame haired ladies", "a naked flame haired schoolgirls in uniform", "a naked bulb-lit woman",
    "a naked tree-man", "a naked tree-hugger", "a naked flame haired w0man",
    "a naked flame haired g1rls", "a naked flame haired w o m a n", "a naked flame haired wom@n",
    "a naked flame haired womaan"])
def test_a_compound_after_an_allowed_phrase_that_describes_a_person_however_written_protects_nothing(gate, text):
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", "naked")


@pytest.mark.parametrize("text", ["a naked flame h@ired woman", "a naked flame h a i r e d woman",
                                  "a naked flame hai red woman", "a naked tree hugg1ng man", "a naked tree hugg!ng man",
                                  "a naked flame h*ired girl"])
def test_a_disguised_compound_after_an_allowed_phrase_before_a_person_protects_nothing(gate, text):
    # was: allowed, the -ed or -ing word read as written only while the person after it was read through disguises
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", "naked")


@pytest.mark.parametrize("text", ["a naked flame eyed woman", "a naked flame eyed young girl",
                                  "a naked flame ey3d woman", "a naked flame eyed sprinter"])
def test_an_allowed_phrase_before_eyed_written_with_a_space_and_a_person_protects_nothing(gate, text):
    # was: allowed while "a naked flame-eyed woman" was refused: a compound written with a space needed an -ed word of
    # five letters or more
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", "naked")


@pytest.mark.parametrize("text", ["a naked flame red woman", "a naked bulb fed woman", "a naked tree bed woman"])
def test_a_short_ed_word_that_is_no_part_of_the_body_begins_no_compound_after_an_allowed_phrase(denylist, text):
    assert denylist.match(text) is None


@pytest.mark.parametrize("text", ["a naked bulb l!t cellar", "a naked flame fl!ckering in the dark"])
def test_a_disguised_compound_after_an_allowed_phrase_before_a_thing_or_a_word_of_place_still_protects(denylist, text):
    assert denylist.match(text) is None


@pytest.mark.parametrize("text", [
    "a naked flame haired vixen", "a naked tree hugging hottie", "a naked tree hugging vixens",
    "a naked flame lit milf", "a naked tree hugging stepsister", "a naked flame haired young nymph",
    "a naked tree hugging hunk", "a naked flame haired sprinter", "a naked flame-eyed sprinter",
    "a naked tree skinned surfer", "a naked flame haired v1xen"])
def test_an_allowed_phrase_before_a_compound_given_a_body_or_a_person_named_by_an_epithet_protects_nothing(gate, text):
    # was: allowed, "vixen", "hottie" and "sprinter" named no person the gate knew; a compound of a part of the body
    # ("flame haired") now shows a being whatever names it
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", "naked")


@pytest.mark.parametrize("text", ["a naked bulb lit cellar", "the naked flame headed north",
                                  "a naked flame warmed cabin", "naked trees lining a street",
                                  "a naked bulb lit hallway with a stud wall"])
def test_a_compound_after_an_allowed_phrase_before_a_thing_still_protects_with_the_longer_person_list(gate, text):
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize("text", ["naked trees shading children", "naked trees shading kids at a picnic",
                                  "naked branches framing girls on a swing", "naked bulbs lighting women at a bar"])
def test_an_allowed_phrase_in_the_plural_before_its_verb_and_a_person_still_protects(gate, text):
    # was: refused as naked, "trees shading children" taken for a compound adjective ("tree-shading children")
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)


@pytest.mark.parametrize("text", ["a naked tree hugging man", "a naked trees-hugging man",
                                  "naked trees and a naked man", "a naked flame haired woman and naked bulbs"])
def test_a_singular_or_hyphenated_compound_before_a_person_still_protects_nothing(gate, text):
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", "naked")


@pytest.mark.parametrize("text", ["a naked tree hugger", "a naked tree hugger in a forest", "a naked tree huggers",
                                  "a naked flame dancer at a festival", "a naked tree hugg3r", "a naked flame lover"])
def test_an_allowed_phrase_before_a_person_that_heads_a_noun_compound_with_its_noun_protects_nothing(gate, text):
    # was: allowed, the person after "naked tree" unread, while "a naked tree-hugger" was refused
    verdict = gate.check_prompt(text)
    assert (verdict.reason, verdict.matched) == ("denylist", "naked")


@pytest.mark.parametrize("text", ["a naked tree house party", "a naked bulb ceiling lamp", "naked trees children climb",
                                  "a naked flame in the dark with a woman", "a cocktail waitress at a bar",
                                  "stars visible to the naked eye", "a naked wire figure", "a bloody mary waitress"])
def test_an_allowed_phrase_before_a_thing_a_plural_or_a_word_between_still_protects(gate, text):
    verdict = gate.check_prompt(text)
    assert verdict.allowed, (text, verdict.matched)
