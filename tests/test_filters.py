"""Sample filters: the chain, its report and spec parsing, and each built-in filter except novelty."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import pytest

from botkit.errors import BotkitError, ConfigError, PluginError
from botkit.filters import (
    DEFAULT_FILTERS,
    FILTERS,
    Filter,
    FilterChain,
    FilterContext,
    SampleFilter,
    build_chain,
)
from botkit.sample import Sample

BUILT_IN = ["banned", "callable", "charset", "dedupe", "length", "min-score", "novelty", "repetition"]


def verdicts(spec: object, texts: list[str], context: FilterContext | None = None) -> list[str | None]:
    """What a one-filter chain says about each text (None: kept)."""
    chain = build_chain([spec], context or FilterContext(), where="test")  # type: ignore[list-item]
    ((_, filt),) = chain.filters
    return list(filt.check([Sample(t) for t in texts]))


def kept(spec: object, texts: list[str], context: FilterContext | None = None) -> list[str]:
    return [t for t, v in zip(texts, verdicts(spec, texts, context)) if v is None]


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of filter functions, written where only this test can import it."""
    name = f"user_filters_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            def no_cats(text):
                return "mentions cats" if "cat" in text.split() else True

            def short_only(text):
                return len(text) < 20

            def explode(text):
                raise ValueError("boom")

            def undecided(text):
                return None

            def count_tokens(text):
                return text.split("-")

            not_a_function = 3
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


# -- registry, chain, report ---------------------------------------------------------------


def test_every_built_in_filter_is_registered_by_entry_point() -> None:
    assert set(BUILT_IN) <= set(FILTERS.names())
    for name in BUILT_IN:
        cls = FILTERS.get(name)
        assert issubclass(cls, Filter) and cls.summary
        for field_name, field in cls.Options.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"


def test_report_counts_add_up_across_batches_and_each_sample_is_counted_once() -> None:
    chain = build_chain(["length", "dedupe", {"length": {"max_words": 3}}], FilterContext())
    assert chain.names == ["length", "dedupe", "length#2"]
    first = chain.apply([Sample(t) for t in ["", "one two six", "one two six", "one two three four", "  "]])
    assert [s.text for s in first.kept] == ["one two six"]
    assert [(r.sample.text, r.filter) for r in first.rejected] == [
        ("", "length"),
        ("  ", "length"),
        ("one two six", "dedupe"),
        ("one two three four", "length#2"),
    ]
    second = chain.apply([Sample("One, two, six!"), Sample("fresh new words")])  # a duplicate of the first batch's sample
    assert [s.text for s in second.kept] == ["fresh new words"]
    report = chain.report
    assert report.total == 7 and report.kept == 2
    assert report.rejected == {"length": 2, "dedupe": 2, "length#2": 1}
    assert report.kept + sum(report.rejected.values()) == report.total
    table = report.format().splitlines()
    assert table[0].split() == ["filter", "samples", "share"]
    assert table[-1].split() == ["total", "7", "100.0%"] and table[-2].split() == ["kept", "2", "28.6%"]


def test_an_empty_report_prints_without_dividing_by_zero() -> None:
    assert "total" in build_chain("none", FilterContext()).report.format()


def test_a_filter_returning_the_wrong_number_of_verdicts_is_reported() -> None:
    class Broken(Filter):
        def check(self, samples: list) -> list:  # the wrong number of verdicts, on purpose
            return [None]

    chain = FilterChain([("broken", Broken(Filter.Options(), FilterContext()))])
    with pytest.raises(PluginError, match="filter 'broken' returned 1 verdicts for 2 samples"):
        chain.apply([Sample("a"), Sample("b")])


def test_a_third_party_filter_registers_by_name() -> None:
    @FILTERS.register("no-digits")
    class NoDigits(SampleFilter):
        def reject(self, sample: Sample) -> str | None:
            return "has digits" if any(c.isdigit() for c in sample.text) else None

    chain = build_chain("length,no-digits", FilterContext())
    result = chain.apply([Sample("take route 66"), Sample("take route sixty-six")])
    assert [s.text for s in result.kept] == ["take route sixty-six"]
    assert result.rejected[0].filter == "no-digits" and result.rejected[0].reason == "has digits"


# -- specs from config and from --filters ------------------------------------------------------


def test_chain_from_config_shaped_list(tmp_path: Path) -> None:
    banned = tmp_path / "banned.txt"
    banned.write_text("# mine\nturnip\n", encoding="utf-8")
    spec = ["length", "dedupe", {"repetition": {"max_word_repeats": 2}}, {"banned": {"file": "banned.txt"}}, {"charset": None}]
    chain = build_chain(spec, FilterContext(), where="config.yaml", path_prefix=("filters",), base_dir=tmp_path)
    assert chain.names == ["length", "dedupe", "repetition", "banned", "charset"]
    result = chain.apply([Sample(t) for t in ["a TURNIP stew", "no no no no", "fine words here", "fine words here"]])
    assert [s.text for s in result.kept] == ["fine words here"]
    rejected = {r.sample.text: r.filter for r in result.rejected}
    assert rejected == {"no no no no": "repetition", "a TURNIP stew": "banned", "fine words here": "dedupe"}


def test_chain_from_filters_flag() -> None:
    assert build_chain("none", FilterContext()).names == []
    assert build_chain("length, dedupe", FilterContext()).names == ["length", "dedupe"]
    assert build_chain("default,banned", FilterContext()).names == ["length", "charset", "repetition", "dedupe", "banned"]


def test_default_chain_adds_novelty_only_with_a_corpus(tmp_path: Path) -> None:
    without = build_chain("default", FilterContext()).names
    assert without == [n for n in DEFAULT_FILTERS if n != "novelty"]
    assert build_chain(None, FilterContext()).names == without
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a line of the corpus that is long enough\n", encoding="utf-8")
    assert build_chain("default", FilterContext(corpus_paths=(corpus,))).names == list(DEFAULT_FILTERS)


def test_unknown_filter_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        build_chain("length,lenght", FilterContext())
    message = str(info.value)
    assert message.startswith("--filters: unknown filter 'lenght' (known: ")
    assert all(name in message for name in BUILT_IN) and "\n" not in message
    with pytest.raises(ConfigError, match=r"^bot\.yaml: bots\.a\.filters\.1: unknown filter 'nope'"):
        build_chain(["length", "nope"], FilterContext(), where="bot.yaml", path_prefix=("bots", "a", "filters"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([{"length": {"max_chars": "lots"}}], "config.yaml: filters.0.length.max_chars: Input should be a valid integer"),
        (["dedupe", {"length": {"max_char": 3}}], "config.yaml: filters.1.length.max_char: unknown key"),
        ([{"dedupe": {"threshold": 2}}], "config.yaml: filters.0.dedupe.threshold: Input should be less than or equal to 1"),
        ([{"min-score": {}}], "config.yaml: filters.0.min-score.min: required key is missing"),
        ([{"length": 5}], "config.yaml: filters.0.length: expected a mapping of options (got 5)"),
        ([7], "config.yaml: filters.0: expected a filter name or {name: {options}} (got 7)"),
        ({"length": {}}, "config.yaml: filters: expected a list of filters, 'default' or 'none'"),
        (["none", "length"], "config.yaml: filters: 'none' cannot be combined with other filters"),
        ([{"length": {"min_tokens": 3}}], "config.yaml: filters.0.length: min_tokens/max_tokens need tokenizer"),
        ([{"charset": {"allow": "latin"}}], "config.yaml: filters.0.charset: allow: expected printable, ascii or a character class"),
        ([{"banned": {"patterns": ["(unclosed"]}}], "config.yaml: filters.0.banned: pattern '(unclosed' is not a valid regular expression"),
        ([{"banned": {"file": "missing.txt"}}], "missing.txt: word list not found"),
        ([{"callable": {"function": "nomodule_xyz:f"}}], "filters.0.callable: cannot import module 'nomodule_xyz'"),
        ([{"callable": {"function": "just_a_name"}}], "filters.0.callable: expected 'module:function' (got 'just_a_name')"),
        (["novelty"], "config.yaml: filters.0.novelty: needs the training corpus"),
    ],
)
def test_bad_filter_config_names_the_key_path(spec: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_chain(spec, FilterContext(), where="config.yaml", path_prefix=("filters",), base_dir=tmp_path)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "Traceback" not in str(info.value)


def test_a_required_option_missing_from_the_flag_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^--filters: min-score\.min: required key is missing"):
        build_chain("min-score", FilterContext())


# -- length -----------------------------------------------------------------------------------


def test_length_defaults_reject_near_empty_samples_of_short_text_models() -> None:
    texts = ["", ":", "The", "Show HN:", "a b", "Show HN: a tiny model", "Why it works"]
    assert kept("length", texts) == ["Show HN: a tiny model", "Why it works"]


def test_length_bounds_in_characters_and_words() -> None:
    spec = {"length": {"min_chars": 5, "max_chars": 20, "min_words": 2, "max_words": 4}}
    texts = ["tiny", "  two words  ", "one two three four", "one two three four five", "a" * 21, "longword"]
    assert verdicts(spec, texts) == [
        "too short: 4 characters (min 5)",
        None,
        None,
        "too long: 23 characters (max 20)",
        "too long: 21 characters (max 20)",
        "too short: 1 words (min 2)",
    ]


def test_length_target_presets_and_the_context_limit() -> None:
    tweet = "x " * 139 + "xx"  # 280 characters
    title = tweet + "x" * 20
    assert kept({"length": {"target": "twitter"}}, [tweet, tweet + "!", title]) == [tweet]
    assert kept({"length": {"target": "reddit-title"}}, [tweet, title, title + "!"]) == [tweet, title]
    assert kept("length", [tweet, title], FilterContext(max_chars=280)) == [tweet]
    assert kept({"length": {"max_chars": 100, "target": "twitter"}}, [tweet[:100], tweet[:101]]) == [tweet[:100]]


def test_length_in_tokens_through_a_callable(user_module: str) -> None:
    spec = {"length": {"tokenizer": f"{user_module}:count_tokens", "min_tokens": 2, "max_tokens": 3, "min_chars": 1, "min_words": 1}}
    assert verdicts(spec, ["a", "a-b", "a-b-c", "a-b-c-d"]) == ["too short: 1 tokens (min 2)", None, None, "too long: 4 tokens (max 3)"]


# -- dedupe -----------------------------------------------------------------------------------

SENTENCE = "The quick brown fox jumps over the lazy dog while the farmer sleeps under an old oak tree"


def test_dedupe_exact_after_normalising_case_space_and_punctuation() -> None:
    texts = ["Hello, World!", "hello world", "HELLO   world...", "Hello wide world"]
    assert kept("dedupe", texts) == ["Hello, World!", "Hello wide world"]
    assert verdicts("dedupe", texts)[1] == 'a duplicate of an earlier sample: "Hello, World!"'


def test_dedupe_near_duplicates_by_word_shingles() -> None:
    one_word_changed = SENTENCE.replace("lazy", "sleepy")
    related = "The quick brown fox jumps over a fence and runs into the dark forest to find food"
    texts = [SENTENCE, one_word_changed, related, SENTENCE + " tonight"]
    result = verdicts("dedupe", texts)
    assert result[0] is None and result[2] is None  # shares a few words, is a different text
    assert result[1] is not None and result[1].startswith("a near duplicate (similarity 0.")
    assert result[3] is not None and "near duplicate" in result[3]
    assert kept({"dedupe": {"threshold": 1}}, texts) == texts  # exact duplicates only


def test_dedupe_against_what_was_posted_before() -> None:
    context = FilterContext(posted=iter([SENTENCE, "An old post"]))
    result = verdicts("dedupe", ["an old post!", SENTENCE.upper(), SENTENCE.replace("oak", "elm"), "Something new"], context)
    assert result[0] == 'a duplicate of a text posted before: "An old post"'
    assert result[1] is not None and result[1].startswith("a duplicate of a text posted before")
    assert result[2] is not None and result[2].startswith("a near duplicate") and "posted before" in result[2]
    assert result[3] is None


def test_dedupe_remembers_only_what_the_whole_chain_kept(user_module: str) -> None:
    chain = build_chain(["dedupe", {"callable": {"function": f"{user_module}:no_cats"}}], FilterContext())
    first = chain.apply([Sample("a cat sat here"), Sample("a dog sat here"), Sample("A dog sat here!")])
    assert [s.text for s in first.kept] == ["a dog sat here"]
    assert {r.sample.text: (r.filter, r.reason) for r in first.rejected} == {
        "a cat sat here": ("callable", "mentions cats"),
        "A dog sat here!": ("dedupe", 'a duplicate of an earlier sample: "a dog sat here"'),
    }
    second = chain.apply([Sample("a cat sat here"), Sample("a dog sat here")])
    # the rejected cat sentence was not remembered by dedupe: only the callable rejects it again
    assert {r.sample.text: r.filter for r in second.rejected} == {"a cat sat here": "callable", "a dog sat here": "dedupe"}


# -- banned -----------------------------------------------------------------------------------


def test_banned_words_respect_word_boundaries() -> None:
    spec = {"banned": {"words": ["ass", "cunt"]}}
    clean = ["A classic tale", "Scunthorpe United won", "bass and brass", "as you like it", "passing grade", "Assistant"]
    assert kept(spec, clean) == clean
    assert kept(spec, ["kiss my ass", "ASS!", "what an a$$", "@ss", "aaassss"]) == []


def test_banned_words_see_through_leetspeak_and_stretched_letters() -> None:
    spec = {"banned": {"words": ["shit", "hell", "idiot*", "go away"], "profanity": False}}
    caught = ["5h1t happens", "sh!t", "SHIIIIT", "what the h3ll", "what the he11", "you 1d10t", "idiotic", "go   AWAY!", "g0 4w4y"]
    clean = ["shirt", "hello", "shell", "he'll go", "go on", "away we go", "idiom"]
    assert kept(spec, caught) == []
    assert kept(spec, clean) == clean
    assert verdicts(spec, ["well 5h1iit"]) == ['contains banned "shit" (written "5h1iit")']


def test_banned_patterns_and_lists_from_files(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("# a list\nturnip\n\nparsnip*\n", encoding="utf-8")
    (tmp_path / "patterns.txt").write_text(r"\bcall \d{3}" + "\n", encoding="utf-8")
    spec = {"banned": {"file": "words.txt", "pattern_file": ["patterns.txt"], "patterns": [r"https?://"]}}
    chain = build_chain([spec], FilterContext(), where="c.yaml", base_dir=tmp_path)
    ((_, filt),) = chain.filters
    texts = ["Turnips? no, a TURNIP", "parsnips galore", "Call 555 now", "see http://x.y", "carrots and call me"]
    assert filt.check([Sample(t) for t in texts]) == [
        'contains banned "turnip"',  # the case alone differs, so the reason does not repeat it
        'contains banned "parsnip*" (written "parsnips")',
        'matches a banned pattern: "Call 555"',
        'matches a banned pattern: "http://"',
        None,
    ]


def test_banned_built_in_profanity_list() -> None:
    assert verdicts("banned", ["What the fuuuck", "classic assonance", "MOTHERFUCKER", "sh1tty day"]) == [
        'contains banned "fuck*" (written "fuuuck")',
        None,
        'contains banned "motherfuck*" (written "MOTHERFUCKER")',
        'contains banned "shit*" (written "sh1tty")',
    ]
    # with a list of your own the built-in one is off unless asked for
    assert kept({"banned": {"words": ["turnip"]}}, ["what the fuck"]) == ["what the fuck"]
    assert kept({"banned": {"words": ["turnip"], "profanity": True}}, ["what the fuck"]) == []


# -- repetition -------------------------------------------------------------------------------


def test_repetition_catches_loops() -> None:
    loops = [
        "the state of the state of the state",
        "lolololololol",
        "I said no no no no",
        "and then aaaaaaaaaaah",
        "we will go and we will go and we will go and we will go and we will",
        "up down down up up down down up up down down up",
    ]
    result = verdicts("repetition", loops)
    assert result[0] == "loop: a 3-word phrase repeated 2.7 times"
    assert result[1] is not None and result[1].startswith("loop: stuttering letters")
    assert result[2] == "loop: one word 4 times in a row"
    assert result[5] == "loop: a 4-word phrase repeated 3.0 times"
    assert all(result)


def test_repetition_keeps_ordinary_repeats() -> None:
    fine = [
        "I really really want to go",
        "no no no, not that one",
        "hahaha that is funny",
        "Mississippi is a long river",
        "the cat and the dog and the bird",
        "I think, I think, therefore I am",
        "1000000 people",
        "the state of the union is strong",
    ]
    assert kept("repetition", fine) == fine


def test_repetition_low_share_of_distinct_trigrams() -> None:
    repetitive = "red fish blue fish and red fish blue fish or red fish blue fish and red fish blue fish"
    assert verdicts("repetition", [repetitive]) == ["repetitive: only 47% of its word 3-grams are distinct"]
    assert kept({"repetition": {"min_distinct": 0.4}}, [repetitive]) == [repetitive]


# -- min-score, charset, callable ------------------------------------------------------------


def test_min_score() -> None:
    filt = build_chain([{"min-score": {"min": -2}}], FilterContext()).filters[0][1]
    samples = [Sample("a", score=-1.5), Sample("b", score=-2.5), Sample("c", score=None), Sample("d", score=math.nan)]
    assert filt.check(samples) == [None, "score -2.50 below -2", None, None]
    strict = build_chain([{"min-score": {"min": -2, "unknown": "reject"}}], FilterContext()).filters[0][1]
    assert strict.check(samples) == [None, "score -2.50 below -2", "no score", "no score"]


def test_charset_presets_classes_and_script_hint() -> None:
    texts = ["plain text\n\twith tabs", "café ☕ 🎉", "broken \ufffd decode", "bell \x07"]
    assert kept("charset", texts) == texts[:2]
    assert verdicts({"charset": {"allow": "ascii"}}, texts[:2]) == [None, "character 'é' (U+00E9) is not in the allowed set (ascii)"]
    assert kept({"charset": {"allow": "[a-z ]"}}, ["only lower", "Capital"]) == ["only lower"]
    hint = {"charset": {"script": "latin"}}
    assert kept(hint, ["Hello world", "Привет, мир", "Hello Мир мир", "Hello Мир world again", "12345 !!!"]) == [
        "Hello world",
        "Hello Мир world again",  # 83 % Latin letters
        "12345 !!!",  # no letters to judge
    ]
    assert kept({"charset": {"script": "cyrillic", "min_script_share": 0.5}}, ["Привет, мир", "Hello Мир"]) == ["Привет, мир"]


def test_callable_filter_from_a_user_module(user_module: str) -> None:
    assert verdicts({"callable": {"function": f"{user_module}:no_cats"}}, ["a cat", "a dog"]) == ["mentions cats", None]
    short_only = f"{user_module}:short_only"
    assert verdicts({"callable": {"function": short_only}}, ["short", "x" * 30]) == [None, f"rejected by {short_only}"]
    with pytest.raises(ConfigError, match=f"module '{user_module}' has no function 'not_a_function'"):
        verdicts({"callable": {"function": f"{user_module}:not_a_function"}}, [])


def test_callable_failures_are_one_line_errors(user_module: str) -> None:
    with pytest.raises(PluginError) as info:
        verdicts({"callable": {"function": f"{user_module}:explode"}}, ["some text"])
    assert str(info.value) == f'{user_module}:explode failed on "some text": ValueError: boom'
    with pytest.raises(BotkitError, match="returned None; expected True, False or a reason string"):
        verdicts({"callable": {"function": f"{user_module}:undecided"}}, ["some text"])
