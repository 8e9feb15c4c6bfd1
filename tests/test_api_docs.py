"""docs/api.md and the worker's responses name the same fields: every action's documented result table is
compared with what the action returns on the tiny worker, nested fields (`timing.total_ms`) included."""

from __future__ import annotations

import base64
import dataclasses
import json
import re

import pytest

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, REPO_ROOT
from f5_worker.worker import Worker

API_DOC = REPO_ROOT / "docs" / "api.md"
ACTIONS = ("synthesize", "align", "upload_voice", "list_voices", "get_voice", "delete_voice", "list_models", "health")
BUCKET_ONLY = "bucket delivery only"
REF_B64 = base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()


def section(markdown: str, title: str) -> str:
    """The text under the heading ``title`` (any level), up to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}\s*$", markdown, re.MULTILINE)
    assert match, f"no section '{title}' in {API_DOC.name}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(markdown, match.end())
    return markdown[match.end():end.start() if end else len(markdown)]


@dataclasses.dataclass
class Documented:
    top: set[str]
    nested: dict[str, set[str]]
    bucket_only: set[str]


def result_table(title: str) -> Documented:
    """The action's result table (header `| field | meaning |`): the field names in its first column."""
    text = section(API_DOC.read_text(), title)
    tables = re.findall(r"^\| field \| meaning \|\n\|---\|---\|\n((?:\|.*\n)+)", text, re.MULTILINE)
    assert len(tables) == 1, f"'{title}' should have one result table, has {len(tables)}"
    doc = Documented(set(), {}, set())
    for row in tables[0].splitlines():
        first, meaning = row.strip("|").split("|", 1)
        names = re.findall(r"`([^`]+)`", first)
        assert names, f"a row of '{title}' names no field: {row}"
        for name in names:
            if meaning.strip().startswith(BUCKET_ONLY):
                doc.bucket_only.add(name)
            elif "." in name:
                parent, child = name.split(".", 1)
                doc.nested.setdefault(parent, set()).add(child)
            else:
                doc.top.add(name)
    return doc


def assert_matches(out: dict, doc: Documented) -> None:
    assert "error" not in out, out
    assert set(out) == doc.top, f"returned but undocumented: {set(out) - doc.top}; " \
                                f"documented but not returned: {doc.top - set(out)}"
    for parent, children in doc.nested.items():
        value = out[parent]
        value = value[0] if isinstance(value, list) else value
        assert set(value) == children, f"{parent}: returned {sorted(value)}, documented {sorted(children)}"


def test_every_action_has_a_result_table():
    tables = {action: result_table(action if action != "synthesize" else "Result") for action in ACTIONS}
    assert {"audio_base64", "words", "timing", "delivery"} <= tables["synthesize"].top
    assert tables["synthesize"].bucket_only == {"audio_url", "caption_urls", "files", "expires_in"}
    assert {"cuda_graphs", "torch_compile", "align_processes", "aligner"} <= tables["health"].top
    assert {"language", "timing"} <= tables["align"].top


def test_synthesize(worker):
    out = worker.handle({"text": "Hello there. Dr. Smith paid.", "seed": 3, "nfe_step": 4, "char_timings": True,
                         "caption_formats": ["srt", "vtt"], "max_retries": 1})
    assert out["delivery"] == "inline"
    assert_matches(out, result_table("Result"))


def test_synthesize_without_retries_still_reports_their_time(worker):
    out = worker.handle({"text": "Hello there.", "seed": 3, "nfe_step": 4, "max_retries": 0})
    assert out["quality"]["retries"] == 0 and out["timing"]["retries_ms"] == 0


def test_align(worker):
    out = worker.handle({"action": "align", "text": DEFAULT_VOICE_TEXT, "audio_base64": REF_B64,
                         "char_timings": True, "caption_formats": ["vtt"]})
    assert_matches(out, result_table("align"))


def test_voice_actions(worker, tiny_settings, tmp_path, no_bucket_env):
    volume = tmp_path / "volume"
    volume.mkdir()
    w = Worker(dataclasses.replace(tiny_settings, network_volume_path=volume), worker.models)
    upload = w.handle({"action": "upload_voice", "name": "anna", "audio_base64": REF_B64,
                       "ref_text": DEFAULT_VOICE_TEXT})
    assert_matches(upload, result_table("upload_voice"))
    voice_fields = result_table("upload_voice").nested["voice"]
    listed = w.handle({"action": "list_voices"})
    assert_matches(listed, result_table("list_voices"))
    assert [set(v) for v in listed["voices"]] == [voice_fields]
    got = w.handle({"action": "get_voice", "name": "anna", "include_audio": True})
    assert_matches(got, result_table("get_voice"))
    assert set(got["voice"]) == voice_fields
    deleted = w.handle({"action": "delete_voice", "name": "anna"})
    assert_matches(deleted, result_table("delete_voice"))
    assert set(deleted["voice"]) == voice_fields


def test_health(worker):
    out = worker.handle({"action": "health"})
    assert_matches(out, result_table("health"))
    assert out["align_processes"] == 1 and out["cuda_graphs"] is False and out["torch_compile"] is False


def test_list_models(worker):
    out = worker.handle({"action": "list_models"})
    assert_matches(out, result_table("list_models"))
    assert [m["name"] for m in out["models"] if m["default"]] == [out["default"]]


def test_healths_aligner_is_the_backend_an_english_job_gets(worker):
    aligned = worker.handle({"action": "align", "text": DEFAULT_VOICE_TEXT, "audio_base64": REF_B64})
    assert not aligned["timings_estimated"]
    assert worker.handle({"action": "health"})["aligner"] == aligned["aligner"] in ("ctc", "sphinx")


@pytest.mark.parametrize("title", ["Result", "align", "health"])
def test_the_comparison_sees_a_missing_row(title):
    """The check can fail: a table without one of its rows no longer matches."""
    doc = result_table(title)
    out = {name: {} for name in doc.top} | {p: dict.fromkeys(c) for p, c in doc.nested.items()}
    assert_matches(out, doc)
    dropped = sorted(doc.top)[0]
    with pytest.raises(AssertionError, match="returned but undocumented"):
        assert_matches(out, Documented(doc.top - {dropped}, doc.nested, doc.bucket_only))


# --- the request examples of the docs, run as written ---------------------------------------------------------

EXAMPLE_DOCS = ("README.md", "docs/api.md", "docs/models.md")
EXAMPLE_FAST = {"nfe_step": 4, "max_retries": 0}  # the tiny model speaks noise: fewer steps, no re-sampling


def request_examples(markdown: str) -> list[dict]:
    """Every job of the form ``{"input": {...}}`` in the page's ```json blocks and `inline code`; a block may hold
    several jobs one after another."""
    texts = re.findall(r"```json\n(.*?)```", markdown, re.DOTALL)
    texts += re.findall(r"`(\{\"input\": \{(?!\.\.\.).*?\}\})`", markdown)
    decoder, jobs = json.JSONDecoder(), []
    for text in texts:
        if '"input"' not in text:
            continue
        pos = 0
        while pos < len(text.rstrip()):
            pos += len(text[pos:]) - len(text[pos:].lstrip())
            job, pos = decoder.raw_decode(text, pos)
            jobs.append(job)
    return jobs


def runnable(job: dict, ref_b64: str) -> dict:
    """The job as a user would send it here: example URLs and elided clips become the default voice's clip."""
    request = dict(job["input"])
    for url_field in ("audio_url", "ref_audio_url"):
        if url_field in request:
            request[url_field.replace("_url", "_base64")] = ref_b64
            del request[url_field]
    if "…" in request.get("ref_audio_base64", ""):
        request["ref_audio_base64"] = ref_b64
    if "segments" in request:
        request["segments"] = [runnable({"input": s}, ref_b64) for s in request["segments"]]
    return request


def test_request_examples_parse():
    """The extraction finds what the pages show, so the run below cannot pass by finding nothing."""
    found = {doc: request_examples((REPO_ROOT / doc).read_text()) for doc in EXAMPLE_DOCS}
    actions = {job["input"].get("action", "synthesize") for jobs in found.values() for job in jobs}
    assert set(ACTIONS) - {"get_voice"} <= actions, actions
    assert len(found["docs/api.md"]) >= 9 and len(found["README.md"]) >= 3 and len(found["docs/models.md"]) == 2


@pytest.mark.slow
def test_request_examples_run_as_documented(worker, tiny_settings, tiny_model_dir, tmp_path, no_bucket_env):
    """Every request example in the docs runs on the tiny worker (with the French model of docs/models.md as
    `fr`, and the voices they name uploaded first) and gets the documented result: its fields in the action's
    result table, its own options honoured, and words that index the text."""
    from f5_worker.tts.tiny_models import tiny_fr_model_files

    fr = tiny_fr_model_files(tiny_model_dir)
    entry = {"name": "fr", "architecture": str(fr.config_path), "checkpoint": str(fr.ckpt_path),
             "vocab": str(fr.vocab_path), "vocoder": str(fr.vocoder_dir), "languages": ["fr"]}
    volume = tmp_path / "volume"
    volume.mkdir()
    w = Worker(dataclasses.replace(tiny_settings, network_volume_path=volume, models_json=json.dumps([entry])),
               worker.models)
    tables = {action: result_table(action if action != "synthesize" else "Result") for action in ACTIONS}
    jobs = [(doc, job) for doc in EXAMPLE_DOCS for job in request_examples((REPO_ROOT / doc).read_text())]
    uploads = [(doc, job) for doc, job in jobs if job["input"].get("action") == "upload_voice"]
    for doc, job in uploads + [j for j in jobs if j not in uploads]:  # the voices first: one page names another's
        request = runnable(job, REF_B64)
        action = request.get("action", "synthesize")
        if action == "upload_voice":
            request["overwrite"] = True  # the same name is uploaded by several pages
        elif action == "synthesize":
            request = EXAMPLE_FAST | request
        out = w.handle(request)
        assert "error" not in out, (doc, job, out)
        where = f"{doc}: {json.dumps(job)[:80]}"
        doc_fields = tables[action]
        assert set(out) <= doc_fields.top, (where, set(out) - doc_fields.top)
        if action not in ("synthesize", "align"):
            continue
        assert out["format" if action == "synthesize" else "sample_rate"]
        if "output_format" in request:
            assert out["format"] == request["output_format"], where
        if "seed" in request:
            assert out["seed"] == request["seed"], where
        if "model" in request:
            assert out["model"] == request["model"], where
        assert sorted(out["captions"]) == sorted(request.get("caption_formats", ["srt"])), where
        assert ("chars" in out) == request.get("char_timings", False), where
        texts = [s["text"] for s in request["segments"]] if "segments" in request else [request["text"]]
        for word in out["words"]:
            text = texts[word.get("segment", 0)] if "segments" in request else texts[0]
            assert text[word["char_start"]:word["char_end"]] == word["word"], (where, word)
