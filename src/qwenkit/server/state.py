"""Everything a running server holds, on ``app.state.server``: no module globals.

``ServerState`` owns the loaded model, the served names, the draining flag and the admission gate
(per-key limits, fair queueing, metrics: ``admission.build_gate``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from starlette.requests import Request

from qwenkit.engine.chat_run import ChatResult
from qwenkit.engine.llm import LLM
from qwenkit.models.ref import quant_from_filename
from qwenkit.server.protocol_common import ModelCard, SamplingPreset
from qwenkit.server.settings import ServerSettings

log = logging.getLogger("qwenkit.server")


class Ticket(Protocol):
    """One admitted request: who sent it, and how to give its place back."""

    key_name: str | None

    def release(self, completion_tokens: int | None) -> None: ...


class Gate(Protocol):
    """Admission: authenticate, apply limits, queue fairly; and what the metrics see."""

    async def admit(
        self, request: Request, prompt_tokens: int, max_tokens: int, sequences: int = 1
    ) -> Ticket: ...

    def observe(self, endpoint: str, results: Sequence[ChatResult]) -> None: ...


@dataclass(frozen=True)
class ModelIdentity:
    """How the served model is named and described in /v1/models."""

    id: str
    names: frozenset[str]
    family: str | None
    quant: str | None
    created: int = field(default_factory=lambda: int(time.time()))


def model_identity(llm: LLM, ref: str | None, served_name: str | None) -> ModelIdentity:
    """The catalog id when the model is in the catalog, else the file or folder name."""
    path: Path | None = llm.facts.path
    variant = llm.facts.variant
    natural = variant.id if variant is not None else (path.name if path is not None else "qwen")
    model_id = served_name or natural
    names = {model_id, natural}
    if ref:
        names.add(ref)
    if path is not None:
        names.update({path.name, str(path)})
    template = llm.facts.template_family
    family = variant.generation.value if variant is not None else (template.value if template else None)
    quant = quant_from_filename(path.name) if path is not None and path.suffix == ".gguf" else None
    return ModelIdentity(model_id, frozenset(names), family, quant)


@dataclass
class ServerState:
    settings: ServerSettings
    llm: LLM
    identity: ModelIdentity
    gate: Gate
    draining: bool = False

    @property
    def model_id(self) -> str:
        return self.identity.id

    @property
    def model_names(self) -> frozenset[str]:
        return self.identity.names | frozenset(self.adapters)

    @property
    def adapters(self) -> tuple[str, ...]:
        """LoRA adapters served as models of their own (``--lora name=path``), as vLLM lists them."""
        return tuple(name for name, _ in self.settings.lora_pairs)

    def adapter_cards(self) -> list[ModelCard]:
        base = self.model_card()
        return [base.model_copy(update={"id": name, "parent": base.id}) for name in self.adapters]

    def model_card(self) -> ModelCard:
        """The /v1/models entry; catalog facts (size, thinking, presets) when the model is known."""
        ident = self.identity
        variant = self.llm.facts.variant
        return ModelCard(
            id=ident.id,
            created=ident.created,
            family=ident.family,
            quant=ident.quant,
            context_length=self.llm.context_length,
            backend=self.llm.backend.kind.value,
            display_name=variant.display_name if variant else None,
            params_total=variant.params_total if variant else None,
            thinking=variant.thinking.value if variant else None,
            sampling=(
                {mode: SamplingPreset(**dataclasses.asdict(v)) for mode, v in variant.sampling.items()}
                if variant
                else None
            ),
        )

    async def admit(
        self, request: Request, prompt_tokens: int, max_tokens: int, sequences: int = 1
    ) -> Ticket:
        """Admit under the request's key (429 when over a limit, 503 when the queue refuses);
        ``max_tokens`` is reserved, ``sequences`` engine slots are taken (one per choice)."""
        return await self.gate.admit(request, prompt_tokens, max_tokens, sequences)

    def observe(self, endpoint: str, results: Sequence[ChatResult]) -> None:
        self.gate.observe(endpoint, results)

    def log_fault(self, request: Request) -> None:
        log.exception("generation failed", extra={"request_id": getattr(request.state, "request_id", None)})
