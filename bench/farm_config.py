"""A bench farm's ``config.yaml`` and ``praw.ini``, written bot by bot: each bot its own file of
prepared posts and its own account on the fake service, limits lifted, so the bots share nothing but
the ledger. Used by ``farm_failover.py`` and ``farm_scale.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FAST = "limits: {min_interval: 0s, daily_cap: null}"


class FarmConfig:
    """``top``: the config's lines before ``bots:`` (lease, defaults)."""

    def __init__(self, folder: Path, top: list[str]) -> None:
        self.folder = folder
        self.lines = [*top, "bots:"]
        self.ini: list[str] = []

    def add(self, name: str, posts: list[str], target: str) -> None:
        """A bot posting ``posts`` in order to ``target`` (YAML flow keys, without the braces)."""
        (self.folder / f"{name}.txt").write_text("".join(f"{post}\n" for post in posts), encoding="utf-8")
        self.lines.append(f"  {name}: {{posts: {name}.txt, target: {{{target}}}}}")

    def reddit(self, name: str, server: Any, subreddit: str = "SubredditNN") -> str:
        """Target keys for posting as a new account ``name`` on the fake Reddit (its praw.ini site)."""
        server.users[name] = f"pw-{name}"
        self.ini.append(server.praw_ini(name, client_id="farm", client_secret="farm-secret", username=name, password=f"pw-{name}"))
        return f"kind: reddit, site: {name}, subreddit: {subreddit}, contact: u/bench, live: true, {FAST}"

    def twitter(self, name: str, server: Any) -> str:
        """Target keys for posting as a new account ``name`` on the fake X."""
        server.accounts[f"ck-{name}"] = f"at-{name}"
        return f"kind: twitter, live: true, {FAST}, consumer_key: ck-{name}, consumer_secret: cs, access_token: at-{name}, access_token_secret: ats"

    def write(self) -> Path:
        """Write praw.ini (under ``xdg/``, for ``XDG_CONFIG_HOME``) and config.yaml; returns the config."""
        (self.folder / "xdg").mkdir(exist_ok=True)
        (self.folder / "xdg" / "praw.ini").write_text("\n".join(self.ini), encoding="utf-8")
        path = self.folder / "config.yaml"
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        return path
