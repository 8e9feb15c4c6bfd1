"""How a finished result reaches the caller: inline in the job output, or as bucket links.

RunPod refuses job outputs over roughly 10-20 MB, so a long synthesis must go
out as presigned GET URLs of objects under ``results/<job_id>/``. ``output``:

- ``inline``: always in the output; refused up front when it would be too big;
- ``bucket``: always uploaded; refused up front when no bucket is configured;
- ``auto`` (default): inline when small, bucket otherwise.

A result is never dropped for its size: when the estimate said "inline" but
the real output is too big, it goes to the bucket; when there is no bucket it
is refused before synthesis if the estimate already shows it.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from f5_worker.errors import RESULT_NOT_UPLOADED, JobError
from f5_worker.schema import OUTPUT_MODES
from f5_worker.storage.base import StorageError
from f5_worker.storage.stores import Stores

log = logging.getLogger(__name__)

COMPRESSED_FORMATS = ("mp3", "opus")  # the output formats a refusal for size does not suggest: already the smallest
TIMINGS_WORTH_NAMING = 0.1  # the share of a result its timings and captions make, from which a refusal names them
KEPT_WARNING_BYTES = 400  # room in a streamed job's kept result for the warning its last item may carry
LAST_ITEM_ROOM_BYTES = 4096  # room a streamed job's last item keeps for links, warnings and RunPod's envelope

CAPTION_CONTENT_TYPES = {
    "srt": "application/x-subrip",
    "vtt": "text/vtt; charset=utf-8",
    "ass": "text/x-ssa; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")
NO_BUCKET = (
    "no bucket is configured on this worker; set BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID, "
    "BUCKET_SECRET_ACCESS_KEY and BUCKET_NAME"
)


@dataclass(frozen=True)
class ResultFile:
    """One file of a result: the audio, or a caption/timing file."""

    name: str  # e.g. "speech.wav", "captions.srt"
    data: bytes
    content_type: str


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def inline_size(output: Any) -> int:
    """Bytes of the job output as RunPod will see it (compact JSON)."""
    return len(json.dumps(output, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def plan_output(
    mode: str, *, estimated_bytes: int, stores: Stores | None, max_inline_bytes: int, what: str = "",
    audio_format: str = "", timing_bytes: int = 0, timing_fields: tuple[str, ...] = (),
) -> str:
    """Before synthesis: "inline" or "bucket", or a JobError when the result could not be delivered.

    ``what`` describes the estimate for the message (e.g. "212 s of wav"); ``timing_bytes`` of it are the
    timings and captions the job asked for with ``timing_fields``, named as a way out where they make much
    of it. A compressed ``audio_format`` is not suggested to a job that asked for one.
    """
    if mode not in OUTPUT_MODES:
        raise JobError("output", f"must be one of {', '.join(OUTPUT_MODES)}")
    has_bucket = stores is not None and stores.bucket is not None
    if mode == "bucket":
        if not has_bucket:
            raise JobError("output", f"'bucket' is not available: {NO_BUCKET}")
        return "bucket"
    if estimated_bytes <= max_inline_bytes:
        return "inline"
    if mode == "auto" and has_bucket:
        return "bucket"
    big_timings = timing_fields and timing_bytes >= TIMINGS_WORTH_NAMING * estimated_bytes
    if big_timings:
        what = f"{what}, {_mb(timing_bytes)} of them timings and captions" if what else ""
    size = f"about {_mb(estimated_bytes)}" + (f" ({what})" if what else "")
    over = f"the result would be {size}, over the {_mb(max_inline_bytes)} inline limit"
    if has_bucket:  # mode == "inline"
        raise JobError("output", f"{over}; use output 'bucket' or 'auto' to get it as a link")
    raise JobError("text", f"{over}; {_ways_out(audio_format, timing_fields if big_timings else ())}")


def choose_after(planned: str, *, actual_bytes: int, stores: Stores | None, max_inline_bytes: int,
                 audio_format: str = "") -> str:
    """After synthesis: the estimate may have been low; a result too big for inline goes to the bucket."""
    if planned == "bucket" or actual_bytes <= max_inline_bytes:
        return planned
    if stores is not None and stores.bucket is not None:
        return "bucket"
    raise JobError("text", f"the result is {_mb(actual_bytes)}, over the {_mb(max_inline_bytes)} inline limit; "
                           f"{_ways_out(audio_format, ())}")


def _ways_out(audio_format: str, timing_fields: tuple[str, ...]) -> str:
    """What makes a result small enough to come inline, without a bucket: a shorter text always; a compressed
    format where the audio is not one already; fewer timings where they are much of it."""
    ways = ["shorten the text"]
    if audio_format not in COMPRESSED_FORMATS:
        ways.append("use output_format mp3/opus")
    if timing_fields:
        ways.append(f"ask for fewer timings ({', '.join(timing_fields)})")
    listed = ways[0] if len(ways) == 1 else f"{', '.join(ways[:-1])} or {ways[-1]}"
    return f"{listed} (no bucket is configured for links)"


def finish_output(
    out: dict,
    *,
    planned: str,
    job_id: str | None,
    stores: Stores | None,
    max_inline_bytes: int,
    audio_bytes: bytes,
    audio_format: str,
    audio_content_type: str,
) -> dict:
    """Turn a complete inline output into what the caller gets.

    Inline: unchanged, plus ``"delivery": "inline"``. Bucket: the audio
    (``audio_base64``) and each caption file (``captions``: format -> text) are
    uploaded; the output gets ``audio_url``, ``caption_urls`` and ``files``
    (name -> url, content type, bytes, expiry) instead, and keeps the timings.
    """
    target = choose_after(planned, actual_bytes=inline_size(out), stores=stores, max_inline_bytes=max_inline_bytes,
                          audio_format=audio_format)
    if target == "inline":
        out["delivery"] = "inline"
        return out
    audio_name = f"speech.{audio_format}"
    files = [ResultFile(audio_name, audio_bytes, audio_content_type)]
    captions = out.get("captions") or {}
    for fmt, text in captions.items():
        files.append(ResultFile(f"captions.{fmt}", text.encode("utf-8"),
                                CAPTION_CONTENT_TYPES.get(fmt, "text/plain; charset=utf-8")))
    links = upload_result(stores, job_id, files)
    out.pop("audio_base64", None)
    out.pop("captions", None)
    out["delivery"] = "bucket"
    out["audio_url"] = links[audio_name]["url"]
    if captions:
        out["caption_urls"] = {fmt: links[f"captions.{fmt}"]["url"] for fmt in captions}
    out["files"] = links
    out["expires_in"] = stores.settings.url_expiry_s
    return out


def result_prefix(job_id: str | None) -> str:
    """``results/<job_id>/`` with the id made safe for a key (a random id when there is none)."""
    safe = _UNSAFE.sub("_", job_id or "")[:128].strip("._") or uuid.uuid4().hex
    return f"results/{safe}/"


def upload_result(stores: Stores, job_id: str | None, files: list[ResultFile]) -> dict[str, dict]:
    """Upload each file under ``results/<job_id>/`` and return ``{name: {url, content_type, bytes, expires_in}}``.

    A failed upload raises ``JobError("output", ...)``; if the network volume is
    mounted the files are first kept there, so a finished result survives a
    bucket outage.
    """
    if stores.bucket is None:
        raise JobError("output", f"'bucket' is not available: {NO_BUCKET}")
    prefix = result_prefix(job_id)
    expiry = stores.settings.url_expiry_s
    links: dict[str, dict] = {}
    try:
        for f in files:
            key = prefix + f.name
            stores.bucket.put(key, f.data, f.content_type)
            links[f.name] = {
                "url": stores.bucket.url(key, expiry),
                "content_type": f.content_type,
                "bytes": len(f.data),
                "expires_in": expiry,
            }
    except StorageError as exc:
        kept = _keep_on_volume(stores, prefix, files)
        raise JobError("output", f"{RESULT_NOT_UPLOADED} ({exc}){kept}") from None
    return links


def _keep_on_volume(stores: Stores, prefix: str, files: list[ResultFile]) -> str:
    if not stores.settings.volume_mounted:
        return ""
    try:
        for f in files:
            stores.local.put(prefix + f.name, f.data, f.content_type)
    except StorageError:
        return ""
    return f"; the result was kept on the network volume under {stores.local.root / prefix}"


def fit_last_item(item: dict, *, max_bytes: int, stores: Stores | None, job_id: str | None, upload: bool) -> None:
    """A streamed job's last item cut to one that RunPod takes (``max_bytes``, its 1 MB per item): its caption
    files, largest first, go to the bucket as links (``caption_urls``) where ``upload``, else are left out,
    named in its warnings. The captions of a long text in every format, or spoken by many voices, are
    several MB; a last item over 1 MB would never reach the client, and with it nothing of what only the
    whole gives. Each piece's words carry their own times, from which any caption can be made."""
    captions = item.get("captions") or {}
    size, moved = inline_size(item), []
    while captions and inline_size(item) > max_bytes - LAST_ITEM_ROOM_BYTES:
        fmt = max(captions, key=lambda f: len(captions[f]))
        moved.append((fmt, captions.pop(fmt)))
    if not moved:
        return
    if not captions:
        item.pop("captions", None)
    names = ", ".join(fmt for fmt, _ in moved)
    if upload and stores is not None and stores.bucket is not None:
        links = upload_result(stores, job_id, [ResultFile(f"captions.{fmt}", text.encode("utf-8"),
                                                          CAPTION_CONTENT_TYPES.get(fmt, "text/plain; charset=utf-8"))
                                               for fmt, text in moved])
        item["caption_urls"] = {fmt: links[f"captions.{fmt}"]["url"] for fmt, _ in moved}
        item["files"] = {**item.get("files", {}), **links}
        item["expires_in"] = stores.settings.url_expiry_s
        return
    item.setdefault("warnings", []).append(
        f"captions {names} left out: with them the last item would be {_mb(size)}, more than the "
        f"{_mb(max_bytes)} RunPod takes in one streamed item; the pieces' words carry their times, a bucket "
        "would link the files, or ask for fewer caption_formats")


class KeptStream:
    """What RunPod keeps of a streamed job for ``/status`` and ``/runsync``, held under ``max_bytes``.

    runpod-python (``return_aggregate_stream``) posts each item to ``/stream`` and appends that same dict to
    the job's result, which it posts when the job ends. RunPod refuses a result over its limit (10 MB for
    ``/run``, 20 MB for ``/runsync``) with HTTP 400, which runpod-python only logs: the job never completes,
    though its client has read every item on ``/stream``. So once an item has been sent, it is changed in
    place to what the result keeps: the audio of the first pieces, as far as ``max_bytes`` allows
    (MAX_INLINE_BYTES, the bound of every inline result), then the later pieces without their audio
    (``audio_omitted``), each with its offsets and words; the last item's warnings say which.
    """

    def __init__(self, max_bytes: int, job_id: str | None = None):
        self.max_bytes = max_bytes
        self.job_id = job_id
        self.items: list[dict] = []  # as kept
        self.bytes = 2  # of the kept list, as JSON: its brackets so far
        self.omitting = False  # a piece's audio was dropped: every later piece's is too, the kept audio one whole

    def sent(self, item: dict) -> None:
        """``item`` has been posted to ``/stream``, and RunPod's result holds it."""
        self.bytes += inline_size(item) + (1 if self.items else 0)
        self.items.append(item)
        if self.omitting:
            self._omit_audio(item)
        self._fit(self.max_bytes)

    def closing(self, last: dict) -> None:
        """Before the last item is sent: room for it in the kept result, and its ``warnings`` say which
        pieces the kept result holds without audio."""
        self._fit(self.max_bytes - inline_size(last) - 1 - KEPT_WARNING_BYTES)
        omitted = [item["seq"] for item in self.items if item.get("audio_omitted")]
        if omitted:
            last.setdefault("warnings", []).append(
                f"the result /status and /runsync give holds pieces {omitted[0]}-{omitted[-1]} without their "
                f"audio (audio_omitted), to stay under {_mb(self.max_bytes)}; /stream had every piece whole")
        if self.bytes + inline_size(last) + 1 > self.max_bytes:
            log.warning("job %s: its streamed result is %s without audio, over MAX_INLINE_BYTES (%s): RunPod may "
                        "refuse it", self.job_id, _mb(self.bytes + inline_size(last)), _mb(self.max_bytes))

    def _fit(self, max_bytes: int) -> None:
        """Drop the audio of the latest pieces that still hold theirs until the kept result is ``max_bytes``."""
        for item in reversed(self.items):
            if self.bytes <= max_bytes:
                return
            if "audio_base64" in item and "seq" in item:
                self.omitting = True
                self._omit_audio(item)

    def _omit_audio(self, item: dict) -> None:
        if "audio_base64" in item:
            before = inline_size(item)
            del item["audio_base64"]
            item["audio_omitted"] = True
            self.bytes += inline_size(item) - before
