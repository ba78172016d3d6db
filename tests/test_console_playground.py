"""The model page's playground over HTTP: generate with a real (tiny) model, see each filter's verdict, send picks to the queue.

One tiny labelled model is trained for the whole module (seconds); ``plum`` (see console_farm.py)
generates from it, holds its candidates for review and bans the word "script", so a ``<script>``
prefix gives samples that are rejected, with the filter and its reason, and shown as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_farm import BEARER, PLUM_LABELS, SECRET, SECRET_ENV, TOKEN, console_app, ledger_of, logged_in, make_farm, make_model_farm, train_tiny
from starlette.testclient import TestClient

from botkit.bots.ledger import APPROVED
from botkit.console.playground import MAX_SAMPLES

SCRIPT_PREFIX = "<script>alert(1)</script>{{ 7*7 }}"
_HIDDEN = re.compile(r'<input type="hidden" name="(text|label|score|temperature)" value="([^"]*)">')


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("plum"))


@pytest.fixture
def client(tmp_path: Path, model: Path) -> Iterator[TestClient]:
    with console_app(make_model_farm(tmp_path, model)) as (app, _ledger):
        yield TestClient(app)


def generate(client: TestClient, **fields: object) -> TestClient:
    """POST the playground form as a logged-in browser does (cookie and CSRF token)."""
    return client.post("/bots/plum/playground", data={"csrf": TOKEN.csrf, "n": "4", "temperature": "0.8", "label": "", "prefix": "plum ", **fields})


def send_form(page: str, picks: list[str]) -> dict[str, list[str]]:
    """What the browser sends from the page's send form with ``picks`` ticked: every hidden field, in order."""
    data: dict[str, list[str]] = {"text": [], "label": [], "score": [], "temperature": []}
    for name, value in _HIDDEN.findall(page):
        data[name].append(html.unescape(value))
    return {**data, "pick": picks, "csrf": [TOKEN.csrf]}


def test_the_form_offers_the_models_labels_and_the_bots_settings(client: TestClient) -> None:
    page = client.get("/bots/plum/model", headers=BEARER).text
    assert 'action="/bots/plum/playground#playground"' in page and f'max="{MAX_SAMPLES}"' in page
    assert all(f'<option value="{label}">{label}</option>' in page for label in PLUM_LABELS)
    assert 'name="temperature" value="0.8"' in page and f'name="csrf" value="{TOKEN.csrf}"' in page


def test_bearer_gets_n_samples_with_verdicts_as_json(client: TestClient) -> None:
    answer = client.post("/bots/plum/playground", headers=BEARER, data={"n": "5", "temperature": "0.5, 1.0", "label": "orchard1", "prefix": "plum "})
    assert answer.status_code == 200, answer.text
    samples = answer.json()["samples"]
    assert len(samples) == 5 and all(s["label"] == "orchard1" and s["text"].startswith("plum ") for s in samples)
    assert all(s["passed"] == (s["filter"] is None) and isinstance(s["score"], float) for s in samples)
    rejected = client.post("/bots/plum/playground", headers=BEARER, data={"n": "3", "prefix": SCRIPT_PREFIX}).json()["samples"]
    assert [(s["passed"], s["filter"]) for s in rejected] == [(False, "banned")] * 3 and all("script" in s["reason"] for s in rejected)
    for bad in (
        {"n": str(MAX_SAMPLES + 1)},
        {"n": "0"},
        {"n": "3", "temperature": "hot"},
        {"n": "3", "temperature": "0.5, nan"},
        {"n": "3", "label": "no-such-label"},
    ):
        assert client.post("/bots/plum/playground", headers=BEARER, data=bad).status_code == 400, bad


def test_samples_show_as_text_with_each_verdict(client: TestClient) -> None:
    page = generate(logged_in(client), n="3", prefix=SCRIPT_PREFIX).text
    assert page.count('<li class="sample rejected">') == 3 and "rejected by <b>banned</b>" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;{{ 7*7 }}" in page
    assert 'name="pick"' not in page and 'id="send-picked"' not in page  # only samples the filters pass can be picked
    page = generate(client, n="4").text
    assert page.count('<li class="sample ') == 4 and 'value="plum "' in page  # the form keeps what was asked


def test_picked_samples_go_to_the_queue_and_can_be_approved(client: TestClient, tmp_path: Path) -> None:
    page = generate(logged_in(client)).text
    picks = re.findall(r'name="pick" value="(\d+)"', page)[:2]
    assert picks, page
    form = send_form(page, picks)
    answer = client.post("/bots/plum/playground/send", data=form, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/bots/plum?sent=2&refused=0"
    assert "2 sample(s) from the playground sent to the queue" in client.get(answer.headers["location"]).text
    with ledger_of(tmp_path) as ledger:
        queued = ledger.queued("plum")
        assert [c.text for c in queued] == [form["text"][int(i)] for i in picks]
        assert ledger.state("plum").supplied == 0  # the bot's own supplier position did not move
    assert all(html.escape(c.text) in client.get("/bots/plum").text for c in queued)
    client.post("/bots/plum/decide", data={"csrf": TOKEN.csrf, "id": str(queued[0].id), "action": "approve"})
    with ledger_of(tmp_path) as ledger:
        assert ledger.candidate("plum", queued[0].id).state == APPROVED


def test_sending_judges_again_so_a_forged_pick_is_refused(client: TestClient, tmp_path: Path) -> None:
    forged = {"text": ["a script kiddie", "plum jam"], "label": ["", "orchard2"], "score": ["-1.5", "nan"], "temperature": ["0.8", ""], "pick": ["0", "1", "7"]}
    answer = client.post("/bots/plum/playground/send", headers=BEARER, data=forged)
    assert answer.status_code == 200 and answer.json()["sent"] == 1
    assert [(r["text"], r["filter"]) for r in answer.json()["refused"]] == [("a script kiddie", "banned")]
    with ledger_of(tmp_path) as ledger:
        assert [(c.text, c.label, c.score) for c in ledger.queued("plum")] == [("plum jam", "orchard2", None)]
    again = client.post("/bots/plum/playground/send", headers=BEARER, data={**forged, "pick": ["1"]})
    assert again.json()["sent"] == 0 and again.json()["refused"][0]["filter"] == "dedupe"  # already in the queue
    assert client.post("/bots/plum/playground/send", headers=BEARER, data={"text": ["x"], "pick": ["0"]}).status_code == 400


def test_posts_without_csrf_token_are_403(client: TestClient, tmp_path: Path) -> None:
    logged_in(client)
    assert client.post("/bots/plum/playground", data={"n": "2"}).status_code == 403
    forged = {"text": ["plum jam"], "label": [""], "score": [""], "temperature": [""], "pick": ["0"]}
    for csrf in ({}, {"csrf": "0" * 64}):
        assert client.post("/bots/plum/playground/send", data={**forged, **csrf}).status_code == 403
    assert TestClient(client.app).post("/bots/plum/playground", data={"n": "2", "csrf": TOKEN.csrf}).status_code == 401
    with ledger_of(tmp_path) as ledger:
        assert ledger.queued("plum") == []


def test_a_model_not_trained_yet_is_said_not_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with console_app(make_farm(tmp_path)) as (app, _ledger):
        client = TestClient(app)
        page = client.get("/bots/pear/model", headers=BEARER)
        assert page.status_code == 200 and "holds no trained model yet (vocab.json, model.weights.h5 missing)" in page.text
        assert 'id="generate"' not in page.text
        answer = generate(logged_in(client)).text  # /bots/plum is not in this farm
        assert "no bot named plum" in answer
        tried = client.post("/bots/pear/playground", data={"csrf": TOKEN.csrf, "n": "2"})
        assert tried.status_code == 400 and "holds no trained model yet" in tried.text and 'id="loss-chart"' in tried.text
        assert client.post("/bots/apple/playground", headers=BEARER, data={"n": "2"}).status_code == 404
