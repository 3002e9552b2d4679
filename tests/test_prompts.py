"""Consent prompts: the committed files, reproducible builds, a firm's own recordings, install."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from recorder.policy.model import MODES
from recorder.policy.prompts import (
    DEFAULT_DIRECTORY,
    MANIFEST,
    PromptsError,
    build,
    install,
    media_prefix_for,
    read_manifest,
    read_sources,
    verify,
    wav_facts,
)
from tests.harness import cli

ROOT = Path(__file__).resolve().parents[1]
HAVE_TOOLS = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None
needs_tools = pytest.mark.skipif(not HAVE_TOOLS, reason="espeak-ng and sox (bash .ci/setup)")


def test_committed_prompts_match_their_manifest() -> None:
    assert verify(DEFAULT_DIRECTORY) == []
    manifest = read_manifest(DEFAULT_DIRECTORY)
    ids = {p["id"] for p in manifest["prompts"]}
    assert ids == {f"consent-{m}-{lang}" for m in MODES for lang in ("en", "es")}
    for p in manifest["prompts"]:
        duration, _ = wav_facts(DEFAULT_DIRECTORY / p["file"])  # raises unless 8 kHz mono 16-bit
        assert duration == p["duration_s"] and 2 < duration < 20
        assert p["opt_out_dtmf"] == "9"
        assert ("press 9" if p["language"] == "en" else "oprima 9") in p["text"].lower()


@pytest.mark.parametrize(
    "prompt", read_manifest(DEFAULT_DIRECTORY)["prompts"], ids=lambda p: str(p["id"])
)
def test_each_built_prompt_is_under_7_seconds(prompt: dict[str, object]) -> None:
    """A party waits through its prompt (words, opt-out offer and the breath around them)
    before anyone can speak: keep each one short."""
    duration, _ = wav_facts(DEFAULT_DIRECTORY / str(prompt["file"]))
    assert duration == prompt["duration_s"] and duration < 7.0, prompt["text"]


@needs_tools
def test_build_is_reproducible(tmp_path: Path) -> None:
    first = build(DEFAULT_DIRECTORY, "9", tmp_path / "a")
    second = build(DEFAULT_DIRECTORY, "9", tmp_path / "b")
    assert first == second
    for p in first["prompts"]:
        assert (tmp_path / "a" / p["file"]).read_bytes() == (
            tmp_path / "b" / p["file"]
        ).read_bytes()
    assert (tmp_path / "a" / MANIFEST).read_bytes() == (tmp_path / "b" / MANIFEST).read_bytes()
    committed = read_manifest(DEFAULT_DIRECTORY)
    if committed["tools"] != first["tools"]:
        pytest.skip(f"other tool versions here ({first['tools']}) than for the committed files")
    assert committed == first


@needs_tools
def test_the_opt_out_key_is_spoken_and_recorded(tmp_path: Path) -> None:
    manifest = build(DEFAULT_DIRECTORY, "#", tmp_path)
    en = next(p for p in manifest["prompts"] if p["id"] == "consent-one-party-en")
    assert (en["opt_out_dtmf"], en["text"]) == (
        "#",
        "This call may be recorded. Press # to decline.",
    )
    plain = build(DEFAULT_DIRECTORY, None, tmp_path / "none")
    en = next(p for p in plain["prompts"] if p["id"] == "consent-one-party-en")
    assert (en["opt_out_dtmf"], en["text"]) == (None, "This call may be recorded.")


def _own_recording(folder: Path) -> Path:
    """A firm's recording: 16 kHz stereo, one second of a quiet ramp."""
    path = folder / "own" / "firm.wav"
    path.parent.mkdir(parents=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"".join((i % 200).to_bytes(2, "little") * 2 for i in range(16000)))
    return path


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox (bash .ci/setup)")
def test_a_firms_own_recording_is_converted_and_hashed(tmp_path: Path) -> None:
    own = _own_recording(tmp_path)
    (tmp_path / "prompts.yaml").write_text(
        "prompts:\n  - mode: all-party\n    language: en\n    recording: own/firm.wav\n"
        "    text: Example LLP records this call. Press 5 to opt out.\n    opt_out_dtmf: '5'\n",
        encoding="utf-8",
    )
    (entry,) = build(tmp_path, "9", tmp_path / "out")["prompts"]
    assert entry["source"] == "recording own/firm.wav"
    assert entry["opt_out_dtmf"] == "5"  # what the recording says, not the build's key
    assert entry["text"] == "Example LLP records this call. Press 5 to opt out."
    assert entry["source_sha256"] == hashlib.sha256(own.read_bytes()).hexdigest()
    assert wav_facts(tmp_path / "out" / "consent-all-party-en.wav")[0] == pytest.approx(
        1.0, abs=0.01
    )
    assert verify(tmp_path / "out") == []


def test_missing_tools_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sox = shutil.which("sox")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(PromptsError, match=r"sox not found on PATH: install it \(Debian: apt-get"):
        build(DEFAULT_DIRECTORY, "9", tmp_path / "out")
    if sox is None:
        return
    os.symlink(sox, empty / "sox")
    with pytest.raises(
        PromptsError, match=r"espeak-ng not found on PATH: .*apt-get install espeak-ng"
    ):
        build(DEFAULT_DIRECTORY, "9", tmp_path / "out")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("prompts: {}\n", "expected a mapping with a list 'prompts'"),
        ("prompts:\n  - {mode: all-party, language: en}\n", "needs mode, language and text"),
        ("prompts:\n  - {mode: two-party, language: en, text: x, voice: en}\n", "mode must be"),
        ("prompts:\n  - {mode: all-party, language: en, text: x}\n", "give either voice"),
        (
            "prompts:\n  - {mode: all-party, language: en, text: x, voice: en, speed: 3}\n",
            "unknown keys ['speed']",
        ),
        (
            "prompts:\n  - {mode: all-party, language: en, text: x, voice: en}\n"
            "  - {mode: all-party, language: en, text: y, voice: en-us}\n",
            "appear twice",
        ),
        (  # nine levels of nine aliases: the words would be 387 million items long
            "w: &w0 [a, b, c, d, e, f, g, h, i]\n" + "".join(
                f"w{n}: &w{n} [{', '.join([f'*w{n - 1}'] * 9)}]\n" for n in range(1, 9))
            + "prompts:\n  - {mode: all-party, language: en, text: *w8, voice: en}\n",
            "expand to more than 200,000 values",
        ),
        (
            "prompts: &p\n  - {mode: all-party, language: en, text: *p, voice: en}\n",
            "used inside the block it names",
        ),
    ],
)
def test_bad_sources_are_refused(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "prompts.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PromptsError) as caught:
        read_sources(tmp_path)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("folder", "prefix"),
    [
        ("/var/lib/asterisk/sounds/en/verbatim", "sound:verbatim/"),
        ("/var/lib/asterisk/sounds/verbatim", "sound:verbatim/"),
        ("/var/lib/asterisk/sounds/en_US/firm/consent", "sound:firm/consent/"),
        ("/srv/prompts", "sound:prompts/"),
    ],
)
def test_media_prefix_for_a_sounds_folder(folder: str, prefix: str) -> None:
    assert media_prefix_for(Path(folder)) == prefix


def debian_sounds(tmp_path: Path) -> Path:
    """Debian's layout: /var/lib/asterisk/sounds is a link to /usr/share/asterisk/sounds, whose
    language folder `en` is a link to the voice folder en_US_f_Allison."""
    share = tmp_path / "usr" / "share" / "asterisk" / "sounds"
    (share / "en_US_f_Allison").mkdir(parents=True)
    (share / "en").symlink_to("en_US_f_Allison")
    var = tmp_path / "var" / "lib" / "asterisk"
    var.mkdir(parents=True)
    (var / "sounds").symlink_to(share)
    return var / "sounds"


@pytest.mark.parametrize(
    "below", ["en/verbatim", "en_US_f_Allison/verbatim", "verbatim"], ids=lambda b: b
)
def test_media_prefix_does_not_follow_the_language_link(tmp_path: Path, below: str) -> None:
    sounds = debian_sounds(tmp_path)
    assert media_prefix_for(sounds / below) == "sound:verbatim/"
    # the same folder reached through the other root
    share = tmp_path / "usr" / "share" / "asterisk" / "sounds"
    assert media_prefix_for(share / below) == "sound:verbatim/"


def test_install_copies_verified_files_the_fallback_and_the_manifest(tmp_path: Path) -> None:
    sounds = debian_sounds(tmp_path) / "en" / "verbatim"
    done = install(DEFAULT_DIRECTORY, sounds, "en")
    assert ("consent-all-party-en.wav", "sound:verbatim/consent-all-party-en") in done
    assert verify(sounds) == []
    assert all((sounds / name).stat().st_mode & 0o777 == 0o644 for name, _ in done)
    # the dialplan's fallback (Playback(verbatim/consent)): the strictest wording
    assert done[-1] == ("consent.wav", "sound:verbatim/consent")
    all_party = DEFAULT_DIRECTORY / "consent-all-party-en.wav"
    assert (sounds / "consent.wav").read_bytes() == all_party.read_bytes()
    installed = json.loads((sounds / MANIFEST).read_text(encoding="utf-8"))
    assert installed["fallback"] == {"file": "consent.wav", "copy_of": "consent-all-party-en"}
    # found where Asterisk looks: sounds/<language>/verbatim/consent.wav
    share = tmp_path / "usr" / "share" / "asterisk" / "sounds"
    assert (share / "en_US_f_Allison" / "verbatim" / "consent.wav").is_file()


def test_the_fallback_is_in_the_policys_language(tmp_path: Path) -> None:
    done = install(DEFAULT_DIRECTORY, tmp_path / "sounds" / "es" / "verbatim", "es")
    assert done[-1] == ("consent.wav", "sound:verbatim/consent")
    spanish = (DEFAULT_DIRECTORY / "consent-all-party-es.wav").read_bytes()
    assert (tmp_path / "sounds" / "es" / "verbatim" / "consent.wav").read_bytes() == spanish
    with pytest.raises(PromptsError, match=r"no consent-all-party-fr in .*announcements.language"):
        install(DEFAULT_DIRECTORY, tmp_path / "fr", "fr")


def test_install_refuses_files_that_do_not_match(tmp_path: Path) -> None:
    copy = tmp_path / "prompts"
    shutil.copytree(DEFAULT_DIRECTORY, copy)
    wav = copy / "consent-one-party-en.wav"
    data = bytearray(wav.read_bytes())
    data[-1] ^= 1
    wav.write_bytes(bytes(data))
    with pytest.raises(PromptsError, match=r"consent-one-party-en\.wav: SHA-256 differs"):
        install(copy, tmp_path / "sounds", "en")
    assert not (tmp_path / "sounds").exists()


def verbatim(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return cli.verbatim("prompts", *args, env=env, timeout=120)


def test_cli_install_and_missing_tool(tmp_path: Path) -> None:
    sounds = debian_sounds(tmp_path) / "en" / "verbatim"
    result = verbatim("install", "--sounds-dir", str(sounds))
    assert result.returncode == 0, result.stderr
    assert "sound:verbatim/consent-all-party-es" in result.stdout
    assert "Allison" not in result.stdout
    fallback = f"{sounds / 'consent.wav'}  sound:verbatim/consent"
    assert f"{fallback}  (fallback announcement: Playback(verbatim/consent))" in result.stdout
    (tmp_path / "bin").mkdir()
    result = verbatim("build", "--out", str(tmp_path / "o"), env={"PATH": str(tmp_path / "bin")})
    assert result.returncode == 1 and "sox not found on PATH" in result.stderr


@needs_tools
def test_cli_build_check_compares_with_the_manifest(tmp_path: Path) -> None:
    result = verbatim("build", "--check")
    tools_differ = "tools differ" in result.stdout
    assert result.returncode == (1 if tools_differ else 0), result.stdout + result.stderr
    result = verbatim(
        "build", "--out", str(tmp_path), "--policy", str(ROOT / "config" / "policy.example.yaml")
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / MANIFEST).read_text())["prompts"][0]["opt_out_dtmf"] == "9"
