"""The farm console over HTTP (Starlette's TestClient), its token, and ``botkit report``'s PNGs.

Security first: no token, no farm data; a wrong token is refused; a POST without the CSRF token is
403; generated text is escaped; two decisions on one candidate cannot both win; no target secret
shows. The browser tests are in test_console_browser.py.
"""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from console_farm import (
    BEARER,
    HISTORY,
    SCRIPT,
    SECRET,
    SECRET_ENV,
    TOKEN,
    console_app,
    ledger_of,
    logged_in,
    login_nonce,
    make_farm,
    outbox,
    tick,
    write_weights,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from botkit.bots.bot import build_bots
from botkit.bots.ledger import APPROVED, QUEUED, REJECTED, Ledger, NewCandidate, show_time
from botkit.bots.review import review
from botkit.cli import build_parser
from botkit.commands.common import config_path
from botkit.commands.console import announce, listen, run_report
from botkit.config import load_config
from botkit.console.app import SESSION_COOKIE
from botkit.console.auth import TOKEN_ENV, load_token, token_file
from botkit.console.farm import APPROVE, EDIT, REJECT, AlreadyDecided, decide, funnel
from botkit.console.farm import farm as farm_views
from botkit.errors import BotkitError, ConfigError

from claims import claim

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return make_farm(tmp_path)


@pytest.fixture
def client(farm: Path) -> TestClient:
    with console_app(farm) as (app, _ledger):
        yield TestClient(app)


def queued_ids(farm: Path) -> list[int]:
    with ledger_of(farm.parent) as ledger:
        return [c.id for c in ledger.queued("apple")]


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/status", "/bots/apple", "/bots/pear/model", "/bots/pear/loss.png", "/bots/apple/funnel.png", "/nowhere"])
def test_no_token_is_401_and_shows_no_farm_data(client: TestClient, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN.value}, {"Cookie": f"{SESSION_COOKIE}={TOKEN.value}"}):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "apple" not in answer.text and "first post" not in answer.text
    answer = client.post("/bots/apple/decide", data={"id": "1", "action": "approve"})
    assert answer.status_code == 401


def test_a_browser_is_sent_to_the_login_form(client: TestClient) -> None:
    answer = client.get("/bots/apple", headers={"Accept": "text/html"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Fbots%2Fapple"
    login = client.get(answer.headers["location"])
    assert login.status_code == 200 and 'type="password" name="token"' in login.text and "first post" not in login.text


def test_bearer_token_works_on_every_route(client: TestClient) -> None:
    for path in ["/", "/api/status", "/bots/apple", "/bots/pear/model"]:
        assert client.get(path, headers=BEARER).status_code == 200, path
    for path in ["/bots/pear/loss.png", "/bots/pear/corpus/0.png", "/bots/apple/funnel.png"]:
        answer = client.get(path, headers=BEARER)
        assert answer.status_code == 200 and answer.content.startswith(PNG), path
    page = client.get("/", headers=BEARER)
    assert page.headers["x-frame-options"] == "DENY" and "script-src" not in page.headers["content-security-policy"]


def test_login_form_checks_token_and_its_own_csrf(client: TestClient) -> None:
    wrong = client.post("/login", data={"token": "not-the-token-at-all", "login_csrf": login_nonce(client)}, follow_redirects=False)
    assert wrong.status_code == 401 and "wrong token" in wrong.text and SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
    foreign = TestClient(client.app).post("/login", data={"token": TOKEN.value, "login_csrf": "guess"}, follow_redirects=False)
    assert foreign.status_code == 403  # a login posted from another site has no login cookie
    away = client.post("/login", data={"token": TOKEN.value, "login_csrf": login_nonce(client), "next": "//evil.example/"}, follow_redirects=False)
    assert away.headers["location"] == "/"  # never an open redirect
    assert logged_in(client).get("/").status_code == 200


def test_post_without_csrf_token_is_403(client: TestClient, farm: Path) -> None:
    logged_in(client)
    first = queued_ids(farm)[0]
    for data in ({"id": str(first), "action": "approve"}, {"id": str(first), "action": "approve", "csrf": "0" * 64}):
        answer = client.post("/bots/apple/decide", data=data, follow_redirects=False)
        assert answer.status_code == 403
    assert client.post("/logout", follow_redirects=False).status_code == 403
    assert queued_ids(farm)[0] == first  # nothing decided


# -- what the pages show ---------------------------------------------------------------------


def test_a_claim_in_doubt_shows_on_the_farm_and_bot_pages_and_in_the_api(client: TestClient, farm: Path) -> None:
    """A daemon claimed the ``<script>`` post and stopped without settling it: every view shows it in
    doubt, with since when, as text."""
    with ledger_of(farm.parent) as ledger:
        script = next(c for c in ledger.queued("apple") if c.text == SCRIPT)
        decide(ledger, "apple", script.id, APPROVE)
        (bot,) = build_bots(load_config(farm.parent / "run.yaml").bots, ledger, "run.yaml")
        candidate = claim(bot)
        ledger.retire(bot.worker)  # its stop could not reach the service: the claim stays, its lease ended
    assert candidate.id == script.id and candidate.claimed_at is not None
    shown = f"candidate {script.id} in doubt (claimed, not confirmed) since {show_time(candidate.claimed_at)}; looked up at the next tick"
    page = client.get("/bots/apple", headers=BEARER).text
    row = page.split(f'<tr class="in-doubt" id="in-doubt-{script.id}">', 1)[1].split("</tr>", 1)[0]
    assert shown in row and "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt; {{ 7*7 }}" in row and "<script>" not in page
    assert "No posts yet" not in page and "1 in doubt" in page
    assert f'<small class="in-doubt">{shown}</small>' in client.get("/", headers=BEARER).text
    (apple,) = [view for view in client.get("/api/status", headers=BEARER).json()["bots"] if view["name"] == "apple"]
    assert apple["in_doubt"] == {"candidate": script.id, "since": candidate.claimed_at.isoformat(), "text": SCRIPT, "state": shown}


def test_generated_text_is_escaped(client: TestClient) -> None:
    page = client.get("/bots/apple", headers=BEARER).text
    assert SCRIPT not in page and "<script>document" not in page
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt; {{ 7*7 }}" in page
    assert "49" not in page
    assert client.get("/api/status", headers=BEARER).headers["content-type"] == "application/json"


def test_farm_page_and_status_json(client: TestClient, farm: Path) -> None:
    page = client.get("/", headers=BEARER).text
    assert 'id="bot-apple"' in page and 'id="bot-pear"' in page and "5 to review" in page
    bots = {bot["name"]: bot for bot in client.get("/api/status", headers=BEARER).json()["bots"]}
    assert bots["apple"]["queue"] == 5 and bots["apple"]["to_review"] == 5 and bots["apple"]["last_post"] is None
    assert bots["pear"]["target"] == "outbox (the twitter target is not live)"
    for path in ["/", "/api/status", "/bots/pear", "/bots/pear/model"]:
        assert SECRET not in client.get(path, headers=BEARER).text, path


def test_model_page_shows_curves_settings_and_corpus(client: TestClient) -> None:
    page = client.get("/bots/pear/model", headers=BEARER).text
    assert 'src="/bots/pear/loss.png"' in page and f"{HISTORY[-1]['val_loss']:.4f}" in page
    assert "model.rnn_size" in page and "training.window" in page
    assert "pears.jsonl" in page and "orchard0 (20)" in page and 'src="/bots/pear/corpus/0.png"' in page
    assert "it has no model" in client.get("/bots/apple/model", headers=BEARER).text
    assert client.get("/bots/nobody", headers=BEARER).status_code == 404


def test_model_without_history_shows_final_losses_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with console_app(make_farm(tmp_path, history=False)) as (app, _ledger):
        client = TestClient(app)
        page = client.get("/bots/pear/model", headers=BEARER).text
        assert "No per-epoch losses recorded" in page and "0.7400" in page and "loss.png" not in page
        assert client.get("/bots/pear/loss.png", headers=BEARER).status_code == 404


# -- decisions -------------------------------------------------------------------------------


def test_approve_reject_edit_then_the_tick_posts_them(client: TestClient, farm: Path) -> None:
    one, two, three, four, _ = queued_ids(farm)
    csrf = {"csrf": TOKEN.csrf}
    logged_in(client)
    answer = client.post("/bots/apple/decide", data={**csrf, "id": str(one), "action": "approve"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/bots/apple?approve={one}"
    client.post("/bots/apple/decide", data={**csrf, "id": [str(two), str(four)], "action": "reject"})  # bulk
    page = client.post("/bots/apple/decide", data={**csrf, "id": str(three), "action": "edit", "text": "three, <b>edited</b>"}).text
    assert f"candidate {three} edited and approved" in page and "&lt;b&gt;edited&lt;/b&gt;" not in page.split("<h2>Queue")[1].split("<h2>")[0]
    with ledger_of(farm.parent) as ledger:
        states = {c: ledger_state(ledger, c) for c in (one, two, three, four)}
    assert states == {one: APPROVED, two: REJECTED, three: APPROVED, four: REJECTED}
    tick(farm.parent)
    tick(farm.parent)
    assert outbox(farm.parent) == ["the first post", "three, <b>edited</b>"]
    history = client.get("/bots/apple").text.split("<h2>History")[1]
    assert "three, &lt;b&gt;edited&lt;/b&gt;" in history
    rejected = client.get("/bots/apple").text.split("<h2>Rejected")[1]
    assert "<td>review</td>" in rejected and SCRIPT.replace("<", "&lt;").split(">")[0] in rejected


def ledger_state(ledger: Ledger, candidate_id: int) -> str:
    found = ledger.candidate("apple", candidate_id)
    assert found is not None
    return found.state


def test_double_approval_is_refused_and_says_what_happened(client: TestClient, farm: Path) -> None:
    first, second = queued_ids(farm)[:2]
    logged_in(client)
    data = {"csrf": TOKEN.csrf, "id": str(first), "action": "approve"}
    assert client.post("/bots/apple/decide", data=data, follow_redirects=False).headers["location"] == f"/bots/apple?approve={first}"
    again = client.post("/bots/apple/decide", data={**data, "action": "reject"}, follow_redirects=False)
    assert again.headers["location"] == f"/bots/apple?already={first}"
    assert f"candidate {first} was already decided by someone else: it is approved now" in client.get(again.headers["location"]).text
    # The terminal review decides the second one first; the console's approval of it is refused.
    answers = iter(["r", "q"])
    with ledger_of(farm.parent) as ledger:
        assert review(ledger, "apple", lambda prompt: next(answers), lambda line: None).rejected == 1
    refused = client.post("/bots/apple/decide", headers=BEARER, data={"id": str(second), "action": "approve"})
    assert refused.status_code == 409 and refused.json() == {"decided": [], "action": "approve", "already_decided": [second]}
    with ledger_of(farm.parent) as ledger:
        assert ledger_state(ledger, first) == APPROVED and ledger_state(ledger, second) == REJECTED
    tick(farm.parent)
    tick(farm.parent)
    assert outbox(farm.parent) == ["the first post"]  # approved once, posted once


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_racing_reviewers_decide_each_candidate_once(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    actions = [APPROVE, REJECT, EDIT] * 3
    with Ledger(url) as ledger:
        assert ledger.add_candidates("apple", [NewCandidate(f"post {i}", QUEUED) for i in range(3)], 0, 3)
        ids = [c.id for c in ledger.queued("apple")]

        def race(job: tuple[int, str]) -> str | None:
            candidate_id, action = job
            try:
                return decide(ledger, "apple", candidate_id, action, f"edited by {action}")
            except AlreadyDecided:
                return None

        with ThreadPoolExecutor(len(actions)) as pool:
            results = list(pool.map(race, [(candidate_id, action) for candidate_id in ids for action in actions]))
        wins = [result for result in results if result is not None]
        assert len(wins) == len(ids) and {win.split()[1] for win in wins} == {str(i) for i in ids}
        assert ledger.queued("apple") == [] and funnel(ledger, "nobody").generated == 0
        views = {view.name: view for view in farm_views(ledger, {})}
        assert views["apple"].queue == sum(1 for c in ids if ledger_state(ledger, c) == APPROVED) and len(views["apple"].per_day) == 14


def test_bad_decisions_are_400(client: TestClient, farm: Path) -> None:
    first = queued_ids(farm)[0]
    assert client.post("/bots/apple/decide", headers=BEARER, data={"id": str(first), "action": "publish"}).status_code == 400
    assert client.post("/bots/apple/decide", headers=BEARER, data={"id": str(first), "action": "edit", "text": "  "}).status_code == 400
    assert queued_ids(farm)[0] == first


# Each was a 500 with a traceback: "²" passes str.isdigit() but not int(), 24 digits overflow SQLite,
# 5000 digits exceed int()'s limit, and a decimal or a sign is no id either.
BAD_NUMBERS = ["\u00b2", "\u0663", "99999999999999999999999", "9" * 5000, "0" * 5000, "1.5", "-1", "+1", " ", "", "0x10", str(2**63)]


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_malformed_numeric_fields_are_400_not_500(client: TestClient, farm: Path, bad: str) -> None:
    first = queued_ids(farm)[0]
    answers = {
        "decide id": client.post("/bots/apple/decide", headers=BEARER, data={"id": [str(first), bad], "action": "approve"}),
        "approve": client.get("/bots/apple", headers=BEARER, params={"approve": bad}),
        "already": client.get("/bots/apple", headers=BEARER, params={"already": bad}),
        "sent": client.get("/bots/apple", headers=BEARER, params={"sent": bad}),
        "refused": client.get("/bots/apple", headers=BEARER, params={"refused": bad}),
        "playground n": client.post("/bots/pear/playground", headers=BEARER, data={"n": bad}),
        "playground pick": client.post(
            "/bots/pear/playground/send", headers=BEARER, data={"text": ["t"], "label": [""], "score": [""], "temperature": [""], "pick": [bad]}
        ),
    }
    if bad.strip():  # an empty path segment matches no route at all
        answers["corpus index"] = client.get(f"/bots/pear/corpus/{bad}.png", headers=BEARER)
    assert {field: answer.status_code for field, answer in answers.items()} == dict.fromkeys(answers, 400)
    assert "must be a whole number" in answers["approve"].text and len(answers["approve"].text) < 200  # one short line, no traceback
    assert queued_ids(farm)[0] == first  # one bad id refuses the whole form: nothing was decided


def test_numbers_at_sqlites_limit_are_read_and_find_nothing(client: TestClient, farm: Path) -> None:
    biggest = str(2**63 - 1)
    assert client.get("/bots/apple", headers=BEARER, params={"already": biggest}).status_code == 200
    assert client.post("/bots/apple/decide", headers=BEARER, data={"id": biggest, "action": "approve"}).status_code == 409  # no such candidate: not queued
    assert client.get("/bots/pear/corpus/0007.png", headers=BEARER).status_code == 404
    assert client.get(f"/bots/pear/corpus/{biggest}.png", headers=BEARER).status_code == 404


_FIELD_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30) | st.from_regex(r"\A[0-9]{15,25}\Z") | st.sampled_from(BAD_NUMBERS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["approve", "reject", "edit", "sent", "refused", "already"]), value=_FIELD_TEXT, decided=_FIELD_TEXT, pick=_FIELD_TEXT)
def test_any_string_in_a_numeric_field_is_200_303_or_400_never_500(client: TestClient, field: str, value: str, decided: str, pick: str) -> None:
    assert client.get("/bots/apple", headers=BEARER, params={field: value}).status_code in (200, 400)
    form = {"id": decided, "action": "reject", "csrf": TOKEN.csrf}
    assert logged_in(client).post("/bots/apple/decide", data=form, follow_redirects=False).status_code in (303, 400)
    sent = {"text": ["t"], "label": [""], "score": [value], "temperature": [value], "pick": [pick], "csrf": TOKEN.csrf}
    assert client.post("/bots/pear/playground/send", data=sent, follow_redirects=False).status_code in (303, 400)
    assert client.post("/bots/pear/playground", data={"n": value, "csrf": TOKEN.csrf}).status_code in (200, 400)


def test_funnel_counts_each_filters_rejections(farm: Path) -> None:
    with ledger_of(farm.parent) as ledger:
        new = [NewCandidate("x", REJECTED, reason="length: too short")] * 3 + [NewCandidate("y", REJECTED, reason="dedupe: seen")]
        assert ledger.add_candidates("apple", [*new, NewCandidate("z", QUEUED)], ledger.state("apple").supplied, 0)
        counts = funnel(ledger, "apple")
    assert counts.stages() == [("generated", 10), ("rejected by length", 3), ("rejected by dedupe", 1), ("passed the filters", 6)]


# -- the token -------------------------------------------------------------------------------


def test_token_file_is_made_once_with_mode_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    path = token_file(f"sqlite:///{tmp_path / 'botkit.db'}", tmp_path)
    assert path == tmp_path / "botkit.db.console-token"
    made = load_token(path)
    assert made.new and stat.S_IMODE(path.stat().st_mode) == 0o600 and len(made.value) >= 32
    again = load_token(path)
    assert not again.new and again.value == made.value
    lines = announce("127.0.0.1", "http://127.0.0.1:8750/", made, tmp_path / "config.yaml", "sqlite:///x")
    assert any(made.value in line for line in lines) and not any("warning" in line for line in lines)
    assert not any(made.value in line for line in announce("127.0.0.1", "http://127.0.0.1:8750/", again, tmp_path, "x"))
    os.chmod(path, 0o644)
    with pytest.raises(BotkitError, match="readable by others; run chmod 600"):
        load_token(path)


def test_environment_token_is_used_and_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment-0123")
    token = load_token(tmp_path / "never-made")
    assert token.value == "from-the-environment-0123" and not (tmp_path / "never-made").exists()
    lines = announce("0.0.0.0", "http://0.0.0.0:8750/", token, tmp_path, "x")
    assert not any(token.value in line for line in lines)
    assert any(line.startswith("botkit: warning: the console listens on 0.0.0.0, beyond this machine") for line in lines)
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(BotkitError, match="too short"):
        load_token(tmp_path / "never-made")


def test_a_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--port", "99999"])
    assert "not a port number 0-65535: '99999'" in capsys.readouterr().err


def test_serve_parser_defaults_to_loopback_and_a_taken_port_is_one_error(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve"])
    assert (str(config_path(args)), args.host, args.port) == ("config.yaml", "127.0.0.1", 8750)
    taken = listen("127.0.0.1", 0)
    with taken, pytest.raises(BotkitError, match=rf"cannot listen on 127\.0\.0\.1:{taken.getsockname()[1]} \(Address already in use\)"):
        listen("127.0.0.1", taken.getsockname()[1])


# -- botkit report ---------------------------------------------------------------------------


def report(argv: list[str]) -> None:
    run_report(build_parser().parse_args(["report", *argv]))


def test_report_of_a_weights_folder_writes_loss_and_corpus_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "a b", "label": "x"}\n{"text": "a longer one", "label": "y"}\n', encoding="utf-8")
    write_weights(tmp_path / "weights" / "m", HISTORY, corpus)
    report([str(tmp_path / "weights" / "m"), "-o", str(tmp_path / "out")])
    assert (tmp_path / "out" / "loss.png").read_bytes().startswith(PNG) and (tmp_path / "out" / "corpus-c.png").read_bytes().startswith(PNG)
    assert capsys.readouterr().out.splitlines() == [f"wrote {tmp_path / 'out' / 'loss.png'}", f"wrote {tmp_path / 'out' / 'corpus-c.png'}"]
    write_weights(tmp_path / "weights" / "old", None, tmp_path / "gone.jsonl")
    report([str(tmp_path / "weights" / "old"), "-o", str(tmp_path / "old")])
    out = capsys.readouterr().out
    assert "no per-epoch losses recorded: no loss.png (final: train_loss 0.6000, val_loss 0.7400)" in out and "gone.jsonl" in out


def test_report_reads_the_history_that_resume_state_keeps(tmp_path: Path) -> None:
    write_weights(tmp_path / "m", None)
    (tmp_path / "m" / "resume").mkdir()
    (tmp_path / "m" / "resume" / "state.json").write_text(json.dumps({"epoch": 5, "history": HISTORY}), encoding="utf-8")
    report([str(tmp_path / "m"), "-o", str(tmp_path / "out")])
    assert (tmp_path / "out" / "loss.png").exists()


def test_report_of_a_bot_writes_its_funnel_and_model_pictures(farm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = farm.parent / "pictures"
    report(["--bot", "pear", "-c", str(farm), "-o", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["corpus-pears.png", "loss.png"]
    assert "pear: no candidates in the ledger yet: no funnel.png" in capsys.readouterr().out
    report(["--bot", "apple", "-c", str(farm), "-o", str(out)])
    assert (out / "funnel.png").read_bytes().startswith(PNG)
    with pytest.raises(ConfigError, match="give exactly one of a model folder"):
        report(["weights/x", "--bot", "apple", "-o", str(out)])
    with pytest.raises(ConfigError, match="no bot named plum"):
        report(["--bot", "plum", "-c", str(farm), "-o", str(out)])
    with pytest.raises(BotkitError, match="not a trained model folder"):
        report([str(farm.parent / "nothing"), "-o", str(out)])
