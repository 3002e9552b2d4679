"""Consent prompt files: build them reproducibly, check them, install them for Asterisk.

`consent_prompts/prompts.yaml` is the source: per mode and language the words and an espeak-ng
voice, or a firm's own `recording` (any format sox reads) with the words it says. `build` makes
8 kHz mono 16-bit WAVs (Asterisk's native rate for telephone audio) and `manifest.json` with
each file's words, opt-out key, duration and SHA-256, so an audit can prove which words a party
heard. The same inputs and tool versions give byte-identical files: no dither, no timestamps.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

import yaml

from recorder.common.resources import shipped
from recorder.config._reader import MAX_VALUES, Endless, expanded
from recorder.policy.announce import prompt_id
from recorder.policy.model import MODES

DEFAULT_DIRECTORY: Final = shipped("consent_prompts")
SOURCE: Final = "prompts.yaml"
MANIFEST: Final = "manifest.json"
FORMAT: Final = "WAV, PCM signed 16-bit, 8000 Hz, mono"
_SOX_OUT: Final = ("-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", "-D")
_PAD: Final = ("pad", "0.25", "0.25")  # a breath of silence around the words


class PromptsError(Exception):
    """A prompt cannot be built, checked or installed; the message says what to do."""


@dataclass(frozen=True)
class PromptSource:
    mode: str
    language: str
    text: str  # the words (for a recording: what it says, for the manifest)
    opt_out: str | None = None  # sentence appended when an opt-out key is set; {key} is the key
    voice: str | None = None  # espeak-ng voice
    recording: str | None = None  # a firm's own file, relative to the prompts folder
    recording_opt_out_dtmf: str | None = None  # the key the recording's words announce

    @property
    def id(self) -> str:
        return prompt_id(self.mode, self.language)  # type: ignore[arg-type]

    def words(self, dtmf: str | None) -> str:
        if self.recording is not None or dtmf is None or not self.opt_out:
            return self.text
        return f"{self.text} {self.opt_out.format(key=dtmf)}"


def read_sources(directory: Path) -> list[PromptSource]:
    path = directory / SOURCE
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and expanded(root) > MAX_VALUES:  # as the config files' bound
            raise PromptsError(f"{path}: its aliases (*name) expand to more than "
                               f"{MAX_VALUES:,} values")
        data = yaml.safe_load(text)
    except Endless:
        raise PromptsError(f"{path}: an alias (*name) is used inside the block it names") from None
    except RecursionError:
        raise PromptsError(f"{path}: cannot read: blocks nested too deeply") from None
    except (OSError, yaml.YAMLError) as exc:
        raise PromptsError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), list):
        raise PromptsError(f"{path}: expected a mapping with a list 'prompts'")
    out: list[PromptSource] = []
    for i, entry in enumerate(data["prompts"]):
        where = f"{path}: prompts[{i}]"
        if not isinstance(entry, dict) or not {"mode", "language", "text"} <= set(entry):
            raise PromptsError(f"{where}: needs mode, language and text")
        known = {"mode", "language", "text", "opt_out", "voice", "recording", "opt_out_dtmf"}
        if set(entry) - known:
            raise PromptsError(f"{where}: unknown keys {sorted(set(entry) - known)}")
        if entry["mode"] not in MODES:
            raise PromptsError(f"{where}: mode must be one of {', '.join(MODES)}")
        if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?", str(entry["language"])):
            raise PromptsError(f"{where}: language must be a code such as en or es")
        if (entry.get("voice") is None) == (entry.get("recording") is None):
            raise PromptsError(f"{where}: give either voice (espeak-ng) or recording (a file)")
        dtmf = entry.get("opt_out_dtmf")
        out.append(
            PromptSource(
                str(entry["mode"]),
                str(entry["language"]),
                str(entry["text"]).strip(),
                entry.get("opt_out"),
                entry.get("voice"),
                entry.get("recording"),
                None if dtmf is None else str(dtmf),
            )
        )
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        raise PromptsError(f"{path}: a mode and language appear twice")
    return out


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PromptsError(
            f"{name} not found on PATH: install it (Debian: apt-get install {package}), "
            "or give every prompt a recording of your own in prompts.yaml"
        )
    return found


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PromptsError(f"{PurePosixPath(args[0]).name} failed: {done.stderr.strip()}")
    return done.stdout


def _version(tool: str) -> str:
    first = (_run([tool, "--version"]).strip().splitlines() or ["?"])[0]
    # Paths are not versions: sox starts with its own ("/usr/bin/sox: SoX v14.4.2"), espeak-ng
    # ends with its data folder; keeping them would make the manifest differ between machines.
    first = re.sub(r"^\S*/[^\s:]+:\s*", "", first)
    return re.sub(r"\s+Data at:.*$", "", first)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wav_facts(path: Path) -> tuple[float, str]:
    """(duration in seconds, format description) of a WAV; raises unless 8 kHz mono 16-bit."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width, frames = (
                w.getframerate(),
                w.getnchannels(),
                w.getsampwidth(),
                w.getnframes(),
            )
    except (OSError, wave.Error, EOFError) as exc:
        raise PromptsError(f"{path}: not a readable WAV file: {exc}") from None
    if (rate, channels, width) != (8000, 1, 2):
        raise PromptsError(
            f"{path}: {rate} Hz, {channels} channel(s), {8 * width}-bit; need {FORMAT}"
        )
    return round(frames / rate, 3), FORMAT


def build(directory: Path, dtmf: str | None, out: Path | None = None) -> dict[str, Any]:
    """Build every prompt of `directory`'s prompts.yaml into `out` (default: the same folder)
    with `dtmf` as the announced opt-out key; writes and returns the manifest."""
    sources = read_sources(directory)
    out = out or directory
    out.mkdir(parents=True, exist_ok=True)
    sox = _tool("sox", "sox")
    tools = {"sox": _version(sox)}
    if any(s.recording is None for s in sources):
        espeak = _tool("espeak-ng", "espeak-ng")
        tools["espeak-ng"] = _version(espeak)
    entries = []
    with tempfile.TemporaryDirectory(prefix="verbatim-prompts-") as tmp:
        for s in sources:
            target = out / f"{s.id}.wav"
            partial = Path(tmp) / f"{s.id}.wav"
            entry: dict[str, Any] = {
                "id": s.id,
                "file": target.name,
                "mode": s.mode,
                "language": s.language,
            }
            if s.recording is None:
                spoken = Path(tmp) / f"{s.id}-espeak.wav"
                assert s.voice is not None
                _run([espeak, "-v", s.voice, "-s", "150", "-w", str(spoken), s.words(dtmf)])
                _run([sox, str(spoken), *_SOX_OUT, str(partial), *_PAD])
                entry |= {"source": f"espeak-ng voice {s.voice}", "opt_out_dtmf": dtmf}
            else:
                original = directory / s.recording
                if not original.is_file():
                    raise PromptsError(f"{original}: recording named in {SOURCE} not found")
                _run([sox, str(original), *_SOX_OUT, str(partial)])
                entry |= {
                    "source": f"recording {s.recording}",
                    "source_sha256": sha256(original),
                    "opt_out_dtmf": s.recording_opt_out_dtmf,
                }
            duration, _ = wav_facts(partial)
            entry |= {"text": s.words(dtmf), "duration_s": duration, "sha256": sha256(partial)}
            shutil.move(partial, target)  # only finished files reach the folder
            entries.append(entry)
    manifest = {"format": FORMAT, "tools": tools, "prompts": entries}
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (out / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PromptsError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), list):
        raise PromptsError(f"{path}: expected an object with a list 'prompts'")
    return data


def opt_out_keys(manifest: dict[str, Any]) -> dict[str, str | None]:
    """prompt id -> the opt-out key its words announce: what `explain` checks the policy against."""
    return {str(p["id"]): p.get("opt_out_dtmf") for p in manifest["prompts"]}


def prompt_lengths(manifest: dict[str, Any]) -> dict[str, float]:
    """prompt id -> its length in seconds: how long a party waits through it."""
    return {str(p["id"]): float(p["duration_s"]) for p in manifest["prompts"]}


def sound_lengths(
    manifest: dict[str, Any], language: str, folder: str = "verbatim"
) -> dict[str, float]:
    """What `install` puts in a sounds folder, as Asterisk names the sounds: "verbatim/<id>" and
    the fallback "verbatim/consent" -> length in seconds (for the ARI simulator)."""
    lengths = {f"{folder}/{pid}": s for pid, s in prompt_lengths(manifest).items()}
    strictest = f"{folder}/{prompt_id('all-party', language)}"
    if strictest in lengths:
        lengths[f"{folder}/{FALLBACK}"] = lengths[strictest]
    return lengths


def verify(directory: Path) -> list[str]:
    """Problems with the files of a prompts folder against its manifest; [] when all match."""
    problems = []
    for p in read_manifest(directory)["prompts"]:
        path = directory / str(p["file"])
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256(path) != p["sha256"]:
            problems.append(f"{path}: SHA-256 differs from {MANIFEST}")
        else:
            try:
                wav_facts(path)
            except PromptsError as exc:
                problems.append(str(exc))
    return problems


_LANGUAGE_FOLDER: Final = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2})?")
# The announcement the dialplan plays when the daemon is down (Playback(verbatim/consent) in
# dialplan/verbatim.conf and verbatim-hooks.conf): who is on the call is not known there, so it
# is a copy of the strictest (all-party) prompt.
FALLBACK: Final = "consent"


def _language_folder(root: Path, name: str) -> bool:
    """Whether sounds/<name> is a language folder: "en", "en_US", or a voice folder a language
    links to (Debian: sounds/en -> en_US_f_Allison)."""
    if _LANGUAGE_FOLDER.fullmatch(name):
        return True
    try:
        target = (root / name).resolve()
        return any(
            link.is_symlink() and _LANGUAGE_FOLDER.fullmatch(link.name) is not None
            and link.resolve() == target
            for link in root.iterdir()
        )  # fmt: skip
    except OSError:
        return False


def media_prefix_for(sounds_dir: Path) -> str:
    """sound:verbatim/ for /var/lib/asterisk/sounds/en/verbatim (the part below sounds/<lang>).

    The path is read as written, not resolved: Asterisk finds a prompt as
    sounds/<channel language>/verbatim/..., so following the language symlink (sounds/en ->
    en_US_f_Allison) would print a prefix Asterisk cannot find from its configuration."""
    parts = Path(os.path.abspath(sounds_dir)).parts
    if "sounds" in parts:
        at = len(parts) - parts[::-1].index("sounds")
        below = list(parts[at:])
        if below and _language_folder(Path(*parts[:at]), below[0]):
            below = below[1:]  # the language folder Asterisk picks by channel language
        return "sound:" + "".join(f"{b}/" for b in below)
    return f"sound:{sounds_dir.name}/"


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    target.chmod(0o644)  # Asterisk reads them; the words are not secret


def install(directory: Path, sounds_dir: Path, language: str) -> list[tuple[str, str]]:
    """Copy the verified prompts, the fallback announcement (the all-party prompt in
    `language`, the policy's default) and the manifest into `sounds_dir`: [(file, media URI)].
    The installed manifest names the prompt the fallback is a copy of."""
    problems = verify(directory)
    if problems:
        raise PromptsError(
            "not installing, the prompts do not match their manifest:\n  " + "\n  ".join(problems)
        )
    manifest = read_manifest(directory)
    strictest = prompt_id("all-party", language)
    source = next((p for p in manifest["prompts"] if p["id"] == strictest), None)
    if source is None:
        raise PromptsError(
            f"no {strictest} in {directory / MANIFEST} for the fallback announcement: add the "
            f"all-party prompt in '{language}' (announcements.language) to {SOURCE} and build"
        )
    sounds_dir.mkdir(parents=True, exist_ok=True)
    prefix = media_prefix_for(sounds_dir)
    done = []
    for p in manifest["prompts"]:
        name = str(p["file"])
        _copy(directory / name, sounds_dir / name)
        done.append((name, prefix + Path(name).stem))
    fallback = f"{FALLBACK}.wav"
    _copy(directory / str(source["file"]), sounds_dir / fallback)
    done.append((fallback, prefix + FALLBACK))
    installed = {**manifest, "fallback": {"file": fallback, "copy_of": strictest}}
    text = json.dumps(installed, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (sounds_dir / MANIFEST).write_text(text, encoding="utf-8")
    (sounds_dir / MANIFEST).chmod(0o644)
    return done
