"""Block Kit limits: is this message or view one Slack will accept (and one our house rules allow)?

This module owns the list of Slack's payload limits (see ``/work/shared/slack/NOTES.md`` and
Slack's Block Kit reference) and checks payloads against them. It returns violations as
sentences with a path (``blocks[3].fields[2].text: 2107 units > 2000``); an empty list means OK.

Two layers, because neither is complete alone:
- our own walk of the payload, which knows every limit below, the shape of each object
  (slack_sdk happily serialises ``"text": "x"`` where an object is required) and the house rules
  (a plain ``text`` fallback always present and short; no ``link_names`` / ``parse``; mrkdwn text
  objects ``verbatim`` so Slack never auto-links or auto-mentions untrusted text);
- ``slack_sdk.models`` parsing and serialisation, which raises on many limits by itself.

Lengths are counted in UTF-16 code units (:func:`ges_bot.notify.mrkdwn.slack_len`), never less
than Slack counts. Pure: no I/O. ``notify.render`` uses it to guarantee that it never produces a
violating payload, and tests use it on everything they render.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from ges_bot.notify.mrkdwn import slack_len

__all__ = [
    "MAX_ACTIONS_ELEMENTS",
    "MAX_ALT_TEXT",
    "MAX_BUTTON_TEXT",
    "MAX_BUTTON_VALUE",
    "MAX_CONTEXT_ELEMENTS",
    "MAX_FIELDS",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_ID",
    "MAX_MESSAGE_BLOCKS",
    "MAX_MESSAGE_TEXT",
    "MAX_MODAL_TITLE",
    "MAX_PRIVATE_METADATA",
    "MAX_SECTION_TEXT",
    "MAX_TEXT_OBJECT",
    "MAX_URL",
    "MAX_VIEW_BLOCKS",
    "SLACK_MAX_MESSAGE_TEXT",
    "check_blocks",
    "check_message",
    "check_view",
]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_URL = 3000
MAX_ALT_TEXT = 2000
#: ``block_id``, ``action_id``, ``callback_id``, ``external_id``.
MAX_ID = 255
#: Any text object not covered by a tighter limit.
MAX_TEXT_OBJECT = 3000
#: Slack truncates a message's ``text`` beyond this.
SLACK_MAX_MESSAGE_TEXT = 40000
#: Ours: the fallback is what notifications and screen readers show, so it stays short.
MAX_MESSAGE_TEXT = 3000
#: A modal's ``title``, ``submit`` and ``close``.
MAX_MODAL_TITLE = 24
MAX_PRIVATE_METADATA = 3000
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
MAX_MARKDOWN_BLOCK_TEXT = 12000

_TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})
_BUTTON_STYLES = frozenset({"primary", "danger"})
#: Keys that would make Slack parse untrusted text for mentions and links.
_FORBIDDEN_MESSAGE_KEYS = ("link_names", "parse")


class _Checker:
    """Collects violations while walking one payload."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.violations.append(f"{where}: {problem}")

    # -- scalars ---------------------------------------------------------------------------

    def string(self, where: str, value: object, limit: int, *, required: bool = True) -> None:
        if value is None:
            if required:
                self.add(where, "missing")
            return
        if not isinstance(value, str):
            self.add(where, f"must be a string, not {type(value).__name__}")
            return
        if required and not value:
            self.add(where, "must not be empty")
        size = slack_len(value)
        if size > limit:
            self.add(where, f"{size} units > {limit}")

    def text(self, where: str, obj: object, limit: int, *, plain_only: bool = False, required: bool = True) -> None:
        """A text object: ``{"type": "plain_text" | "mrkdwn", "text": ...}``."""
        if obj is None:
            if required:
                self.add(where, "missing")
            return
        if not isinstance(obj, Mapping):
            self.add(where, f"must be a text object, not {type(obj).__name__}")
            return
        kind = obj.get("type")
        if kind not in _TEXT_TYPES:
            self.add(f"{where}.type", f"must be plain_text or mrkdwn, not {kind!r}")
            return
        if plain_only and kind != "plain_text":
            self.add(f"{where}.type", "must be plain_text")
        self.string(f"{where}.text", obj.get("text"), limit)
        if kind == "mrkdwn":
            if "emoji" in obj:
                self.add(f"{where}.emoji", "only allowed on plain_text")
            if obj.get("verbatim") is not True:
                self.add(
                    f"{where}.verbatim",
                    "mrkdwn must be verbatim: true (else Slack auto-links URLs and parses mentions in it)",
                )
        elif "verbatim" in obj:
            self.add(f"{where}.verbatim", "only allowed on mrkdwn")

    # -- elements --------------------------------------------------------------------------

    def confirm(self, where: str, obj: object) -> None:
        if not isinstance(obj, Mapping):
            self.add(where, "must be a confirmation object")
            return
        self.text(f"{where}.title", obj.get("title"), MAX_CONFIRM_TITLE, plain_only=True)
        self.text(f"{where}.text", obj.get("text"), MAX_CONFIRM_TEXT)
        self.text(f"{where}.confirm", obj.get("confirm"), MAX_CONFIRM_BUTTON, plain_only=True)
        self.text(f"{where}.deny", obj.get("deny"), MAX_CONFIRM_BUTTON, plain_only=True)

    def element(self, where: str, obj: object, action_ids: set[str]) -> None:
        """An interactive or image element (a button, an image, a select…)."""
        if not isinstance(obj, Mapping):
            self.add(where, "must be an element object")
            return
        kind = obj.get("type")
        if not isinstance(kind, str) or not kind:
            self.add(f"{where}.type", "missing")
            return
        if kind == "image":
            self.string(f"{where}.image_url", obj.get("image_url"), MAX_URL)
            self.string(f"{where}.alt_text", obj.get("alt_text"), MAX_ALT_TEXT)
            return
        if "action_id" in obj:
            action_id = obj.get("action_id")
            self.string(f"{where}.action_id", action_id, MAX_ID)
            if isinstance(action_id, str):
                if action_id in action_ids:
                    self.add(f"{where}.action_id", f"{action_id!r} repeats within its block")
                action_ids.add(action_id)
        if "confirm" in obj:
            self.confirm(f"{where}.confirm", obj.get("confirm"))
        if kind == "button":
            self.text(f"{where}.text", obj.get("text"), MAX_BUTTON_TEXT, plain_only=True)
            if "value" in obj:
                self.string(f"{where}.value", obj.get("value"), MAX_BUTTON_VALUE)
            if "url" in obj:
                self.string(f"{where}.url", obj.get("url"), MAX_URL)
            if "style" in obj and obj.get("style") not in _BUTTON_STYLES:
                self.add(f"{where}.style", f"must be primary or danger, not {obj.get('style')!r}")

    def _image_source(self, where: str, block: Mapping[str, Any]) -> None:
        """An image block shows ``image_url`` or a Slack-hosted ``slack_file`` (``id`` or ``url``,
        never both), exactly one of them."""
        if "slack_file" not in block:
            self.string(f"{where}.image_url", block.get("image_url"), MAX_URL)
            return
        if "image_url" in block:
            self.add(where, "has both image_url and slack_file; give one")
        slack_file = block.get("slack_file")
        if not isinstance(slack_file, Mapping) or ("id" in slack_file) == ("url" in slack_file):
            self.add(f"{where}.slack_file", "must be an object with either id or url")
            return
        key = "id" if "id" in slack_file else "url"
        self.string(f"{where}.slack_file.{key}", slack_file.get(key), MAX_URL)

    # -- blocks ----------------------------------------------------------------------------

    def block(self, where: str, block: object, block_ids: set[str]) -> None:
        if not isinstance(block, Mapping):
            self.add(where, f"must be a block object, not {type(block).__name__}")
            return
        if "block_id" in block:
            block_id = block.get("block_id")
            self.string(f"{where}.block_id", block_id, MAX_ID)
            if isinstance(block_id, str):
                if block_id in block_ids:
                    self.add(f"{where}.block_id", f"{block_id!r} repeats")
                block_ids.add(block_id)
        kind = block.get("type")
        action_ids: set[str] = set()
        if kind == "section":
            self._section(where, block, action_ids)
        elif kind == "header":
            self.text(f"{where}.text", block.get("text"), MAX_HEADER_TEXT, plain_only=True)
        elif kind == "context":
            self._elements(where, block.get("elements"), MAX_CONTEXT_ELEMENTS, self._context_element, action_ids)
        elif kind == "actions":
            self._elements(where, block.get("elements"), MAX_ACTIONS_ELEMENTS, self.element, action_ids)
        elif kind == "divider":
            pass
        elif kind == "image":
            self._image_source(where, block)
            self.string(f"{where}.alt_text", block.get("alt_text"), MAX_ALT_TEXT)
            if "title" in block:
                self.text(f"{where}.title", block.get("title"), MAX_ALT_TEXT, plain_only=True)
        elif kind == "markdown":
            self.string(f"{where}.text", block.get("text"), MAX_MARKDOWN_BLOCK_TEXT)
        elif kind == "rich_text":
            if not isinstance(block.get("elements"), list):
                self.add(f"{where}.elements", "must be a list")
        elif kind == "input":
            self.text(f"{where}.label", block.get("label"), 2000, plain_only=True)
            self.element(f"{where}.element", block.get("element"), action_ids)
            if "hint" in block:
                self.text(f"{where}.hint", block.get("hint"), 2000, plain_only=True)
        else:
            self.add(f"{where}.type", f"unknown block type {kind!r}")

    def _section(self, where: str, block: Mapping[str, Any], action_ids: set[str]) -> None:
        has_text = "text" in block
        fields = block.get("fields")
        if not has_text and fields is None:
            self.add(where, "a section needs text or fields")
        if has_text:
            self.text(f"{where}.text", block.get("text"), MAX_SECTION_TEXT)
        if fields is not None:
            if not isinstance(fields, list) or not fields:
                self.add(f"{where}.fields", "must be a non-empty list")
            else:
                if len(fields) > MAX_FIELDS:
                    self.add(f"{where}.fields", f"{len(fields)} items > {MAX_FIELDS}")
                for i, field_obj in enumerate(fields):
                    self.text(f"{where}.fields[{i}]", field_obj, MAX_FIELD_TEXT)
        if "accessory" in block:
            self.element(f"{where}.accessory", block.get("accessory"), action_ids)

    def _context_element(self, where: str, obj: object, action_ids: set[str]) -> None:
        if isinstance(obj, Mapping) and obj.get("type") in _TEXT_TYPES:
            self.text(where, obj, MAX_TEXT_OBJECT)
        elif isinstance(obj, Mapping) and obj.get("type") == "image":
            self.element(where, obj, action_ids)
        else:
            self.add(where, "context elements are text objects or images")

    def _elements(self, where: str, elements: object, limit: int, check: Any, action_ids: set[str]) -> None:
        if not isinstance(elements, list) or not elements:
            self.add(f"{where}.elements", "must be a non-empty list")
            return
        if len(elements) > limit:
            self.add(f"{where}.elements", f"{len(elements)} items > {limit}")
        for i, obj in enumerate(elements):
            check(f"{where}.elements[{i}]", obj, action_ids)

    def blocks(self, where: str, blocks: object, max_blocks: int) -> None:
        if not isinstance(blocks, list):
            self.add(where, "must be a list")
            return
        if len(blocks) > max_blocks:
            self.add(where, f"{len(blocks)} blocks > {max_blocks}")
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            self.block(f"{where}[{i}]", block, block_ids)
            self._sdk_block(f"{where}[{i}]", block)

    def _sdk_block(self, where: str, block: object) -> None:
        """What slack_sdk's own models say about the block (they raise on many limits)."""
        if not isinstance(block, Mapping):
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                parsed = Block.parse(dict(block))
                if parsed is None:
                    self.add(where, "slack_sdk does not recognise this block")
                else:
                    parsed.to_dict()
            except Exception as exc:  # slack_sdk raises assorted errors on malformed input
                self.add(where, f"slack_sdk: {exc}")
        for warning in caught:
            self.add(where, f"slack_sdk warned: {warning.message}")


def check_blocks(blocks: object, *, max_blocks: int = MAX_MESSAGE_BLOCKS, where: str = "blocks") -> list[str]:
    """Violations in a list of blocks (``max_blocks``: 50 for messages, 100 for modals and Home)."""
    checker = _Checker()
    checker.blocks(where, blocks, max_blocks)
    return checker.violations


def check_message(payload: Mapping[str, Any], *, max_text: int = MAX_MESSAGE_TEXT) -> list[str]:
    """Violations in a ``chat.postMessage`` / ``chat.update`` / ``response_url`` payload.

    The plain ``text`` fallback must be present, non-empty and at most ``max_text`` units
    (ours: 3000; Slack itself truncates beyond 40 000). ``link_names`` and ``parse`` must be absent.
    """
    checker = _Checker()
    if not isinstance(payload, Mapping):
        return [f"payload: must be an object, not {type(payload).__name__}"]
    checker.string("text", payload.get("text"), min(max_text, SLACK_MAX_MESSAGE_TEXT))
    for key in _FORBIDDEN_MESSAGE_KEYS:
        if key in payload:
            checker.add(key, "must not be sent (it makes Slack parse untrusted text for mentions and links)")
    if "blocks" in payload:
        checker.blocks("blocks", payload.get("blocks"), MAX_MESSAGE_BLOCKS)
    return checker.violations


def check_view(view: Mapping[str, Any]) -> list[str]:
    """Violations in a view for ``views.open`` / ``views.update`` (modal) or ``views.publish`` (home)."""
    checker = _Checker()
    if not isinstance(view, Mapping):
        return [f"view: must be an object, not {type(view).__name__}"]
    kind = view.get("type")
    if kind not in ("modal", "home"):
        checker.add("type", f"must be modal or home, not {kind!r}")
    if kind == "modal":
        checker.text("title", view.get("title"), MAX_MODAL_TITLE, plain_only=True)
        for key in ("close", "submit"):
            if key in view:
                checker.text(key, view.get(key), MAX_MODAL_TITLE, plain_only=True)
    for key in ("callback_id", "external_id"):
        if key in view:
            checker.string(key, view.get(key), MAX_ID)
    if "private_metadata" in view:
        checker.string("private_metadata", view.get("private_metadata"), MAX_PRIVATE_METADATA, required=False)
    checker.blocks("blocks", view.get("blocks"), MAX_VIEW_BLOCKS)
    if not checker.violations:
        # Only a structurally sound view is worth handing to slack_sdk's model.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                View(**dict(view)).to_dict()
            except Exception as exc:  # slack_sdk raises assorted errors on malformed input
                checker.add("view", f"slack_sdk: {exc}")
        for warning in caught:
            checker.add("view", f"slack_sdk warned: {warning.message}")
    return checker.violations
