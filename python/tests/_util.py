"""Shared test utilities (not a test module)."""

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any, List, Optional

from remotemedia import Node, Pipeline


REPO = Path(__file__).resolve().parents[2]


def cli() -> Optional[str]:
    """The `remotemedia` CLI: $REMOTEMEDIA_CLI, a cargo build in target/, or PATH."""
    candidates = [os.environ.get("REMOTEMEDIA_CLI")]
    candidates += [str(REPO / "target" / p / "remotemedia") for p in ("release", "debug")]
    candidates.append(shutil.which("remotemedia"))
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def run(coro):
    """Runs a coroutine to completion on a fresh event loop."""
    return asyncio.run(coro)


def both(pipeline_factory, data):
    """Runs a fresh pipeline in each executor; returns (rust_result, python_result)."""
    rust = run(pipeline_factory().run(data, use_rust=True))
    python = run(pipeline_factory().run(data, use_rust=False))
    return rust, python


class Recorder(Node):
    """Passes items through, recording lifecycle calls and items seen."""

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.events: List[str] = []
        self.seen: List[Any] = []

    async def initialize(self):
        self.events.append("initialize")
        await super().initialize()

    def process(self, data):
        self.seen.append(data)
        return data

    async def cleanup(self):
        self.events.append("cleanup")
        await super().cleanup()


def pipeline(*nodes, name=None) -> Pipeline:
    """A pipeline of the given nodes."""
    return Pipeline(list(nodes), name=name)
