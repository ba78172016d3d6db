"""The console's web app: Starlette routes rendering Jinja2 templates, plain forms, no build step.

Pages: the farm (``/``), a bot (``/bots/NAME``: history, review queue, rejections, funnel), its
model (``/bots/NAME/model``: curves, settings, corpus, and the playground of
:mod:`botkit.console.playground`), and ``/api/status`` (JSON). Every route but the login form and
the static files needs the token (see :mod:`botkit.console.auth`); every POST from the cookie
session needs the CSRF token; every value is escaped by Jinja2's autoescape,
so generated text (untrusted input) shows as text, ``<script>`` and ``{{ }}`` included.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from botkit.bots.ledger import Ledger, show_time
from botkit.bots.report import in_doubt, web_link
from botkit.bots.spec import BotSpec
from botkit.config import Config
from botkit.console import charts, playground
from botkit.console.auth import Token
from botkit.console.farm import (
    EDIT,
    PAST,
    AlreadyDecided,
    ModelView,
    bot_corpora,
    decide,
    farm,
    funnel,
    model_view,
    rejected,
)
from botkit.console.fields import BadField, whole_number, whole_numbers
from botkit.errors import BotkitError

SESSION_COOKIE = "botkit_session"
LOGIN_COOKIE = "botkit_login"  # double-submit CSRF token of the login form (no session exists yet)
_HERE = Path(__file__).parent
_HISTORY = 50  # posts on a bot page
_HEADERS = {
    # Scripts and styles come from /static only (no inline code can run), and no other site may frame
    # the console: its buttons post to live accounts.
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(config: Config, ledger: Ledger, token: Token) -> Any:
    """The console for ``config``'s bots on ``ledger``, guarded by ``token``."""
    from jinja2 import Environment, FileSystemLoader
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=True)
    env.filters["time"] = show_time
    env.filters["web"] = web_link
    env.filters["in_doubt"] = in_doubt
    console = _Console(config, ledger, token, env)
    routes = [
        Route("/login", console.login_form, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/", console.farm_page),
        Route("/api/status", console.status),
        Route("/bots/{bot}", console.bot_page),
        Route("/bots/{bot}/decide", console.decide, methods=["POST"]),
        Route("/bots/{bot}/model", console.model_page),
        Route("/bots/{bot}/playground", console.generate_samples, methods=["POST"]),
        Route("/bots/{bot}/playground/send", console.send_samples, methods=["POST"]),
        Route("/bots/{bot}/funnel.png", console.funnel_png),
        Route("/bots/{bot}/loss.png", console.loss_png),
        Route("/bots/{bot}/corpus/{index}.png", console.corpus_png),  # checked by whole_number: {index:int} takes any length
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_Guard, token=token)], exception_handlers={BadField: _bad_field})


def _bad_field(request: Any, exc: Exception) -> Any:
    """A malformed numeric field, wherever a handler read it: 400 and one line, never a 500 with a traceback."""
    from starlette.responses import PlainTextResponse

    return PlainTextResponse(f"400: {exc}\n", status_code=400)


class _Guard:
    """ASGI middleware: no token, no farm data (401, or the login form for a browser); safe headers on every answer."""

    def __init__(self, app: Any, token: Token) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse, RedirectResponse

        async def secured(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()]
            await send(message)

        request = Request(scope)
        if request.url.path == "/login" or request.url.path.startswith("/static/") or authenticated(request, self.token):
            await self.app(scope, receive, secured)
            return
        if "text/html" in request.headers.get("accept", "") and request.method == "GET":
            response: Any = RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
        else:
            response = PlainTextResponse("401: log in to the console, or send Authorization: Bearer TOKEN\n", status_code=401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="botkit console"'
        await response(scope, receive, secured)


def authenticated(request: Any, token: Token) -> str | None:
    """How the request proved it has the token: ``"bearer"``, ``"cookie"``, or None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.matches(value.strip()):
        return "bearer"
    return "cookie" if token.session_matches(request.cookies.get(SESSION_COOKIE)) else None


def _safe_next(path: str | None) -> str:
    """Only a path on this console: never an open redirect to another site."""
    return path if path and path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


class _Console:
    """The route handlers, sharing the config, the ledger, the token and the templates."""

    def __init__(self, config: Config, ledger: Ledger, token: Token, env: Any) -> None:
        self.config, self.ledger, self.token, self.env = config, ledger, token, env

    def _said(self, exc: BotkitError) -> str:
        """An error as a page or an answer shows it: without the config's values from the environment
        or any URL's credentials (a message may quote a path or URL it was given)."""
        return self.config.redact(str(exc))

    def _page(self, name: str, status_code: int = 200, **context: Any) -> Any:
        from starlette.responses import HTMLResponse

        context.setdefault("csrf", self.token.csrf)
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=status_code)

    # -- login -------------------------------------------------------------------------------

    def login_form(self, request: Any) -> Any:
        return self._login_page(request.query_params.get("next"))

    def _login_page(self, next_path: str | None, problem: str | None = None, status_code: int = 200) -> Any:
        nonce = secrets.token_urlsafe(16)
        response = self._page("login.html", status_code, login_csrf=nonce, next=_safe_next(next_path), problem=problem, csrf=None)
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/login")
        return response

    async def login(self, request: Any) -> Any:
        from starlette.responses import PlainTextResponse, RedirectResponse

        form = await request.form()
        expected = request.cookies.get(LOGIN_COOKIE)
        if not expected or not secrets.compare_digest(str(form.get("login_csrf", "")), expected):
            return PlainTextResponse("403: the login form expired or came from another site; reload it\n", status_code=403)
        if not self.token.matches(str(form.get("token", "")).strip()):
            return self._login_page(str(form.get("next", "/")), "wrong token", 401)
        response = RedirectResponse(_safe_next(str(form.get("next", "/"))), status_code=303)
        response.set_cookie(SESSION_COOKIE, self.token.session, httponly=True, samesite="strict")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: Any) -> Any:
        from starlette.responses import RedirectResponse

        await self._form(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def _form(self, request: Any) -> Any:
        """The POSTed form, after the CSRF check a cookie session needs (403 without its token).

        A bearer token is sent by scripts, never added by a browser on its own, so it needs none.
        """
        from starlette.exceptions import HTTPException

        form = await request.form()
        if authenticated(request, self.token) != "bearer" and not self.token.csrf_matches(str(form.get("csrf", ""))):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return form

    # -- pages -------------------------------------------------------------------------------

    def farm_page(self, request: Any) -> Any:
        return self._page("farm.html", bots=farm(self.ledger, self.config.bots), config=self.config.path.name)

    def status(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"bots": [view.as_json() for view in farm(self.ledger, self.config.bots)]})

    def _bot(self, request: Any) -> str:
        """The bot a URL names: one of the config's or the ledger's, else 404."""
        from starlette.exceptions import HTTPException

        name = request.path_params["bot"]
        if name not in self.config.bots and name not in self.ledger.bots():
            raise HTTPException(404, f"no bot named {name}")
        return name

    def bot_page(self, request: Any) -> Any:
        name = self._bot(request)
        spec = self.config.bots.get(name)
        query = request.query_params
        messages = [f"candidate {i} {PAST[action]}" for action in PAST for i in whole_numbers(query.getlist(action), action)]
        messages += [f"{n} sample(s) from the playground sent to the queue" for n in whole_numbers(query.getlist("sent"), "sent")]
        problems = [f"{n} picked sample(s) not sent: the bot's filters reject them now" for n in whole_numbers(query.getlist("refused"), "refused") if n]
        already = whole_numbers(query.getlist("already"), "already")
        queue = self.ledger.queued(name)
        return self._page(
            "bot.html", bot=name, spec=spec, target=spec and spec.target_kind, messages=messages, problems=problems,
            already=[(i, getattr(self.ledger.candidate(name, i), "state", "gone")) for i in already],
            history=self.ledger.history(name, _HISTORY), claimed=self.ledger.claimed(name), queue=queue, waiting=self.ledger.waiting(name),
            parents=self.ledger.parents_of(name, (c.id for c in queue if c.reply_to is not None)),
            rejected=rejected(self.ledger, name), funnel=funnel(self.ledger, name),
        )  # fmt: skip

    async def decide(self, request: Any) -> Any:
        """Approve, reject or edit-then-approve the candidates a form names; each one a conditional update."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse, RedirectResponse

        name = self._bot(request)
        form = await self._form(request)
        action = str(form.get("action", ""))
        done: dict[str, list[int]] = {action: [], "already": []}
        problems = []
        for candidate_id in whole_numbers(form.getlist("id"), "id"):
            try:
                await run_in_threadpool(decide, self.ledger, name, candidate_id, action, str(form.get("text", "")) if action == EDIT else None)
                done[action].append(candidate_id)
            except AlreadyDecided:
                done["already"].append(candidate_id)
            except BotkitError as exc:
                problems.append(self._said(exc))
        if problems:
            from starlette.exceptions import HTTPException

            raise HTTPException(400, "; ".join(problems))
        if authenticated(request, self.token) == "bearer":
            return JSONResponse({"decided": done[action], "action": action, "already_decided": done["already"]}, status_code=409 if done["already"] else 200)
        return RedirectResponse(f"/bots/{quote(name)}?" + urlencode(done, doseq=True), status_code=303)

    def model_page(self, request: Any) -> Any:
        return self._model_page(self._bot(request))

    def _model_page(self, name: str, status_code: int = 200, **shown: Any) -> Any:
        """The model page; ``shown``: the playground's request, samples or problem after a POST."""
        spec = self.config.bots.get(name)
        view, problem = (None, "this bot is not in the config") if spec is None else self._model(name)
        trained = playground.trained_model(spec.options.model) if spec is not None and spec.options.model is not None else None
        if spec is not None:
            shown.setdefault("asked", playground.Form.defaults(spec))
        return self._page(
            "model.html", status_code, bot=name, spec=spec, model=view, problem=problem, playground=trained, max_samples=playground.MAX_SAMPLES, **shown
        )

    def _model_spec(self, request: Any) -> BotSpec:
        """The config's bot a playground URL names, if it has a model; else 404."""
        from starlette.exceptions import HTTPException

        spec = self.config.bots.get(self._bot(request))
        if spec is None or spec.options.model is None:
            raise HTTPException(404, "the playground needs a bot of this config with a model")
        return spec

    async def generate_samples(self, request: Any) -> Any:
        """Generate the samples the form asks for, off the event loop, and show each one's verdict."""
        from starlette.concurrency import run_in_threadpool
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        spec = self._model_spec(request)
        form = await self._form(request)
        bearer = authenticated(request, self.token) == "bearer"
        asked = None
        try:
            asked = playground.Form.parse(form)
            samples = await run_in_threadpool(playground.generate, spec, self.ledger, str(self.config.path), asked)
        except BotkitError as exc:
            if bearer:
                raise HTTPException(400, self._said(exc)) from None
            return self._model_page(spec.name, 400, asked=asked or playground.Form.defaults(spec), playground_problem=self._said(exc))
        if bearer:
            return JSONResponse({"samples": [v.as_json() for v in samples]})
        return self._model_page(spec.name, asked=asked, samples=samples)

    async def send_samples(self, request: Any) -> Any:
        """Send the picked samples to the bot's queue; the bot's chain judges them again first."""
        from starlette.concurrency import run_in_threadpool
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse, RedirectResponse

        spec = self._model_spec(request)
        form = await self._form(request)
        try:
            sent, refused = await run_in_threadpool(playground.send, spec, self.ledger, str(self.config.path), playground.picked(form))
        except BotkitError as exc:
            raise HTTPException(400, self._said(exc)) from None
        if authenticated(request, self.token) == "bearer":
            return JSONResponse({"sent": sent, "refused": [v.as_json() for v in refused]})
        return RedirectResponse(f"/bots/{quote(spec.name)}?" + urlencode({"sent": sent, "refused": len(refused)}), status_code=303)

    def _model(self, name: str) -> tuple[ModelView | None, str | None]:
        spec = self.config.bots[name]
        if spec.options.model is None:
            return None, f"this bot posts prepared posts from {spec.options.posts.name if spec.options.posts else '?'}: it has no model"
        try:
            return model_view(spec.options.model, bot_corpora(spec, self.config.corpora)), None
        except BotkitError as exc:
            return None, self._said(exc)

    # -- pictures ----------------------------------------------------------------------------

    def _png(self, data: bytes) -> Any:
        from starlette.responses import Response

        return Response(data, media_type="image/png")

    def _model_or_404(self, request: Any) -> ModelView:
        from starlette.exceptions import HTTPException

        name = self._bot(request)
        if name not in self.config.bots:
            raise HTTPException(404, "this bot is not in the config")
        view, problem = self._model(name)
        if view is None:
            raise HTTPException(404, problem)
        return view

    def loss_png(self, request: Any) -> Any:
        from starlette.exceptions import HTTPException

        view = self._model_or_404(request)
        if not view.history:
            raise HTTPException(404, "no per-epoch losses recorded for this model")
        return self._png(charts.loss_png(view.history, f"{request.path_params['bot']}: loss per epoch", view.unit))

    def corpus_png(self, request: Any) -> Any:
        from starlette.exceptions import HTTPException

        view, index = self._model_or_404(request), whole_number(request.path_params["index"], "the corpus number")
        if not 0 <= index < len(view.corpora):
            raise HTTPException(404, "no such corpus")
        return self._png(charts.corpus_png(view.corpora[index]))

    def funnel_png(self, request: Any) -> Any:
        name = self._bot(request)
        return self._png(charts.funnel_png(funnel(self.ledger, name), f"{name}: filter funnel of the latest candidates"))
