"""The built-in filters, except ``novelty`` (its corpus index is a module of its own)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from botkit.errors import ConfigError, PluginError
from botkit.filters import Filter, FilterContext, SampleFilter
from botkit.filters.similar import SimilarTexts
from botkit.filters.text import words
from botkit.filters.wordlist import BannedWords
from botkit.options import Options
from botkit.post_text import LIMITS
from botkit.sample import Sample


def _as_list(value: Any) -> Any:
    """Let a config say ``file: banned.txt`` as well as ``file: [a.txt, b.txt]``."""
    return [value] if isinstance(value, (str, Path)) else value


PathList = Annotated[list[Path], BeforeValidator(_as_list)]
StrList = Annotated[list[str], BeforeValidator(_as_list)]


def _excerpt(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return f'"{text}"' if len(text) <= limit else f'"{text[: limit - 3]}..."'


def load_callable(spec: str) -> Callable[..., Any]:
    """Import ``module:function``; raise a ConfigError saying which part is wrong."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"expected 'module:function' (got {spec!r})")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import module {module_name!r} ({exc}); is it on PYTHONPATH?") from None
    except Exception as exc:  # noqa: BLE001 - the user's module is broken: say so, without our traceback
        raise ConfigError(f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError(f"module {module_name!r} has no function {attr!r}")
    return function


def _call(function: Callable[..., Any], spec: str, text: str) -> Any:
    """Call user code; its failure is reported as the plugin's, in one line."""
    try:
        return function(text)
    except Exception as exc:
        raise PluginError(f"{spec} failed on {_excerpt(text)}: {type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------------------------- length


class LengthOptions(Options):
    # Short-text models (titles, chat lines) early in training write many near-empty samples ("", ":",
    # "the"): a post needs a few words. Set min_words: 1 and min_chars: 1 for one-word bots.
    min_chars: int = Field(10, ge=0, description="fewest characters, surrounding whitespace not counted (default 10)")
    max_chars: int | None = Field(None, ge=1, description="most characters")
    min_words: int = Field(3, ge=0, description="fewest words (default 3)")
    max_words: int | None = Field(None, ge=1, description="most words")
    target: Literal[tuple(LIMITS)] | None = Field(  # type: ignore[valid-type]
        None, description="cap the characters at a posting target's limit: twitter/x 280, reddit-title 300, bluesky 300, mastodon 500"
    )
    tokenizer: str | None = Field(None, description="'module:function' that counts tokens (returns a number, or the tokens), for min_tokens and max_tokens")
    min_tokens: int | None = Field(None, ge=0, description="fewest tokens (needs tokenizer)")
    max_tokens: int | None = Field(None, ge=1, description="most tokens (needs tokenizer)")


def _bounds_reason(what: str, count: int, low: int | None, high: int | None) -> str | None:
    if low is not None and count < low:
        return f"too short: {count} {what} (min {low})"
    if high is not None and count > high:
        return f"too long: {count} {what} (max {high})"
    return None


class LengthFilter(SampleFilter):
    summary = "keep samples within character, word (and token) bounds, and within the target's limit"
    Options = LengthOptions
    options: LengthOptions

    def __init__(self, options: LengthOptions, context: FilterContext) -> None:
        super().__init__(options, context)
        limits = [options.max_chars, LIMITS.get(options.target or ""), context.max_chars]
        self.max_chars = min((n for n in limits if n is not None), default=None)
        wants_tokens = options.min_tokens is not None or options.max_tokens is not None
        if wants_tokens and options.tokenizer is None:
            raise ConfigError("min_tokens/max_tokens need tokenizer: 'module:function'")
        self.tokenizer = load_callable(options.tokenizer) if options.tokenizer else None

    def reject(self, sample: Sample) -> str | None:
        o = self.options
        text = sample.text.strip()
        reason = _bounds_reason("characters", len(text), o.min_chars, self.max_chars) or _bounds_reason("words", len(text.split()), o.min_words, o.max_words)
        if reason is None and self.tokenizer is not None:
            reason = _bounds_reason("tokens", self._tokens(text), o.min_tokens, o.max_tokens)
        return reason

    def _tokens(self, text: str) -> int:
        assert self.tokenizer is not None and self.options.tokenizer is not None
        counted = _call(self.tokenizer, self.options.tokenizer, text)
        if isinstance(counted, int):
            return counted
        try:
            return len(counted)
        except TypeError:
            what = type(counted).__name__
            raise PluginError(f"{self.options.tokenizer} returned {what}; expected a number or a sequence of tokens") from None


# ---------------------------------------------------------------------------------------- dedupe


class DedupeOptions(Options):
    threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="reject a sample whose word 3-grams overlap this much (Jaccard) with a kept or posted text "
        "(default 0.5: one word changed in a text of 11 words or more); 1 rejects exact duplicates only "
        "(case, punctuation and spacing are always ignored)",
    )


class DedupeFilter(Filter):
    summary = "reject exact and near duplicates of samples kept in this run and of texts posted before"
    Options = DedupeOptions
    options: DedupeOptions

    def __init__(self, options: DedupeOptions, context: FilterContext) -> None:
        super().__init__(options, context)
        self.seen = SimilarTexts(options.threshold)
        self._passed: dict[int, int] = {}  # id(sample) -> its entry in seen, until commit() says whether it was kept
        posted = list(context.posted)
        for text, f in zip(posted, self.seen.features(posted)):
            self.seen.add(f, f"a text posted before: {_excerpt(text)}")

    def check(self, samples: Sequence[Sample]) -> list[str | None]:
        # A sample that passes is stored at once, so its twins later in the batch are caught;
        # commit() takes it out again if a later filter rejects it.
        verdicts: list[str | None] = []
        for sample, f in zip(samples, self.seen.features([s.text for s in samples])):
            found = self.seen.match(f)
            verdicts.append(found)
            if found is None:
                self._passed[id(sample)] = self.seen.add(f, f"an earlier sample: {_excerpt(sample.text)}")
        return verdicts

    def commit(self, kept: Sequence[Sample]) -> None:
        for i in self._passed.keys() - set(map(id, kept)):
            self.seen.remove(self._passed[i])
        self._passed = {}


# ---------------------------------------------------------------------------------------- banned


class BannedOptions(Options):
    words: StrList = Field(default_factory=list, description="banned words or phrases ('word*' bans every word starting with it)")
    file: PathList = Field(default_factory=list, description="files of banned words or phrases, one a line ('#' starts a comment)")
    patterns: StrList = Field(default_factory=list, description="banned regular expressions, matched case-insensitively")
    pattern_file: PathList = Field(default_factory=list, description="files of banned regular expressions, one a line")
    profanity: bool | None = Field(
        None, description="also use botkit's short built-in profanity list (default: only when no words, files or patterns are given)"
    )


def _list_entries(text: str) -> list[str]:
    """One entry a line; blank lines and ``#`` comments skipped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _read_list(path: Path) -> list[str]:
    try:
        return _list_entries(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: word list not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read word list ({exc})") from None


def builtin_profanity() -> list[str]:
    return _list_entries(resources.files("botkit").joinpath("data/profanity.txt").read_text(encoding="utf-8"))


def _compile_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    checked = []
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"pattern {pattern!r} is not a valid regular expression ({exc})") from None
        checked.append(f"(?:{pattern})")
    return re.compile("|".join(checked), re.IGNORECASE) if checked else None


class BannedFilter(SampleFilter):
    summary = "reject samples containing banned words (leetspeak-aware, whole words only) or patterns"
    Options = BannedOptions
    options: BannedOptions

    def __init__(self, options: BannedOptions, context: FilterContext) -> None:
        super().__init__(options, context)
        entries = list(options.words) + [w for path in options.file for w in _read_list(path)]
        patterns = list(options.patterns) + [p for path in options.pattern_file for p in _read_list(path)]
        profanity = options.profanity if options.profanity is not None else not (entries or patterns)
        if profanity:
            entries += builtin_profanity()
        self.banned = BannedWords(entries)
        self.pattern = _compile_patterns(patterns)

    def reject(self, sample: Sample) -> str | None:
        found = self.banned.find(sample.text)
        if found is not None:
            entry, written = found
            same = written.casefold() == entry.rstrip("*").casefold()
            return f'contains banned "{entry}"' + ("" if same else f' (written "{written}")')
        if self.pattern is not None and (match := self.pattern.search(sample.text)):
            return f'matches a banned pattern: "{match.group()}"'
        return None


# ---------------------------------------------------------------------------------------- repetition

_MAX_PHRASE = 8  # longest phrase (in words) looked for in loops
_MIN_TRIGRAMS = 10  # below this, the share of distinct 3-grams says little


class RepetitionOptions(Options):
    max_word_repeats: int = Field(3, ge=1, description="most times one word may come in a row ('no no no no' is rejected at 3)")
    max_phrase_repeats: float = Field(
        2.5,
        gt=1,
        description="reject a phrase of 2-8 words said this many times back to back, partial repeats counting ('the state of the state of the state' is 2.7)",
    )
    char_loop: int = Field(10, ge=4, description="reject a run of this many letters made of a repeated 1-4 letter unit ('lololololol')")
    min_distinct: float = Field(0.5, ge=0, le=1, description=f"reject when under this share of the word 3-grams are distinct (from {_MIN_TRIGRAMS} 3-grams up)")


def _longest_repeat(items: Sequence[str], period: int) -> int:
    """Length of the longest stretch where each item equals the one ``period`` places before it."""
    best = run = 0
    for a, b in zip(items, items[period:]):
        if a == b:
            run += 1
            if run > best:
                best = run
        else:
            run = 0
    return best


def _repeat_distances(ws: list[str], longest: int) -> list[int]:
    """Every distance (up to ``longest``) at which some word comes again: the only periods a loop can have."""
    earlier: dict[str, list[int]] = {}
    found: set[int] = set()
    for i, w in enumerate(ws):
        positions = earlier.setdefault(w, [])
        found.update(i - j for j in positions[-longest:] if i - j <= longest)
        positions.append(i)
    return sorted(found)


class RepetitionFilter(SampleFilter):
    summary = "reject degenerate loops: repeated words and phrases, stuttering letters, few distinct 3-grams"
    Options = RepetitionOptions
    options: RepetitionOptions

    def __init__(self, options: RepetitionOptions, context: FilterContext) -> None:
        super().__init__(options, context)
        self.long_letter_run = re.compile(rf"[^\W\d_]{{{options.char_loop},}}")

    def reject(self, sample: Sample) -> str | None:
        ws = words(sample.text)
        return self._word_loop(ws) or self._char_loop(sample.text) or self._low_variety(ws)

    def _word_loop(self, ws: list[str]) -> str | None:
        o = self.options
        for period in _repeat_distances(ws, _MAX_PHRASE):
            repeats = (_longest_repeat(ws, period) + period) / period
            if period == 1 and repeats > o.max_word_repeats:
                return f"loop: one word {int(repeats)} times in a row"
            if period > 1 and repeats >= o.max_phrase_repeats:
                return f"loop: a {period}-word phrase repeated {repeats:.1f} times"
        return None

    def _char_loop(self, text: str) -> str | None:
        limit = self.options.char_loop
        for run in self.long_letter_run.findall(text):
            folded = run.casefold()
            if any(_longest_repeat(folded, unit) + unit >= limit for unit in range(1, 5)):
                return f"loop: stuttering letters {_excerpt(run, 30)}"
        return None

    def _low_variety(self, ws: list[str]) -> str | None:
        trigrams = list(zip(ws, ws[1:], ws[2:]))
        if len(trigrams) < _MIN_TRIGRAMS:
            return None
        share = len(set(trigrams)) / len(trigrams)
        if share < self.options.min_distinct:
            return f"repetitive: only {share:.0%} of its word 3-grams are distinct"
        return None


# ---------------------------------------------------------------------------------------- min-score


class MinScoreOptions(Options):
    min: float = Field(description="lowest mean log-probability per token to keep (e.g. -2.0; higher is more confident)")
    unknown: Literal["keep", "reject"] = Field("keep", description="what to do with samples that have no score")


class MinScoreFilter(SampleFilter):
    summary = "reject samples the model itself found unlikely (mean log-probability per token)"
    Options = MinScoreOptions
    options: MinScoreOptions

    def reject(self, sample: Sample) -> str | None:
        if not sample.has_score:
            return "no score" if self.options.unknown == "reject" else None
        assert sample.score is not None
        if sample.score < self.options.min:
            return f"score {sample.score:.2f} below {self.options.min:g}"
        return None


# ---------------------------------------------------------------------------------------- charset

#: Allowed characters by name. "printable" refuses control characters (except tab and newline),
#: surrogates, private-use code points and U+FFFD, the marks of broken decoding.
CHARSETS = {
    "printable": r"[^\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufffd\ufffe\uffff\U000f0000-\U0010ffff]",
    "ascii": r"[\t\n\x20-\x7e]",
}
SCRIPTS = {
    "latin": r"[a-zA-Z\u00c0-\u024f\u1e00-\u1eff]",
    "cyrillic": r"[\u0400-\u052f]",
    "greek": r"[\u0370-\u03ff\u1f00-\u1fff]",
    "arabic": r"[\u0600-\u06ff\u0750-\u077f]",
    "hebrew": r"[\u0590-\u05ff]",
    "devanagari": r"[\u0900-\u097f]",
    "cjk": r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]",
}
_LETTER = re.compile(r"[^\W\d_]")


class CharsetOptions(Options):
    allow: str = Field(
        "printable",
        description="allowed characters: 'printable' (any visible text, spaces, tabs, newlines), 'ascii', "
        "or a regex character class such as '[a-zA-Z0-9 .,!?]'",
    )
    script: Literal[tuple(SCRIPTS)] | None = Field(  # type: ignore[valid-type]
        None, description="a language hint: the script most letters must be in"
    )
    min_script_share: float = Field(0.8, ge=0, le=1, description="share of letters that must be in that script (default 0.8)")


class CharsetFilter(SampleFilter):
    summary = "reject samples with characters outside an allowed set, or mostly in another script"
    Options = CharsetOptions
    options: CharsetOptions

    def __init__(self, options: CharsetOptions, context: FilterContext) -> None:
        super().__init__(options, context)
        allow = CHARSETS.get(options.allow, options.allow)
        try:
            if not (allow.startswith("[") and allow.endswith("]")):
                raise re.error("not in brackets")
            self.allowed = re.compile(allow)
        except re.error as exc:
            raise ConfigError(f"allow: expected {', '.join(CHARSETS)} or a character class such as '[a-zA-Z .,!?]' (got {options.allow!r}: {exc})") from None
        self.script = re.compile(SCRIPTS[options.script]) if options.script else None

    def reject(self, sample: Sample) -> str | None:
        leftover = self.allowed.sub("", sample.text)
        if leftover:
            return f"character {leftover[0]!r} (U+{ord(leftover[0]):04X}) is not in the allowed set ({self.options.allow})"
        if self.script is not None:
            letters = "".join(_LETTER.findall(sample.text))
            share = len(self.script.findall(letters)) / len(letters) if letters else 1.0
            if share < self.options.min_script_share:
                return f"only {share:.0%} of its letters are {self.options.script}"
        return None


# ---------------------------------------------------------------------------------------- callable


class CallableOptions(Options):
    function: str = Field(description="'module:function' taking the sample's text and returning True to keep it, or False or a reason to reject it")


class CallableFilter(SampleFilter):
    summary = "your own Python function as a filter"
    Options = CallableOptions
    options: CallableOptions

    def __init__(self, options: CallableOptions, context: FilterContext) -> None:
        super().__init__(options, context)
        self.function = load_callable(options.function)

    def reject(self, sample: Sample) -> str | None:
        verdict = _call(self.function, self.options.function, sample.text)
        if verdict is True:
            return None
        if verdict is False or verdict == "":
            return f"rejected by {self.options.function}"
        if isinstance(verdict, str):
            return verdict
        raise PluginError(f"{self.options.function} returned {verdict!r}; expected True, False or a reason string")
