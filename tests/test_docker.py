"""docker/: what can be checked without Docker. The compose file is valid Compose (the vendored
compose-spec schema), its images are pinned, every command it and the Dockerfile give is a
`verbatim` command, the container's verbatim.yaml passes check-config with .env.example's values,
the dialplan it mounts is the project's, the Asterisk configs name the users, ports and app
verbatim.yaml uses, and the image runs as a non-root user on a read-only root filesystem."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
import yaml

from recorder.cli.main import _parser
from recorder.config import load_config, model
from recorder.policy.prompts import media_prefix_for

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
ASTERISK = DOCKER / "asterisk"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
VERBATIM_IMAGE = "verbatim:0.1.0"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def ours() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if s["image"] == VERBATIM_IMAGE}


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "verbatim.yaml").read_text())
    return loaded


def env_example() -> dict[str, str]:
    text = (DOCKER / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", text, re.MULTILINE))


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → source (a volume's name or a path relative to docker/)."""
    found = {}
    for spec in service.get("volumes", []):
        source, target, *_ = spec.split(":")
        found[target] = source
    return found


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / "Dockerfile").read_text())
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages[-1]


def instruction(name: str) -> str:
    (last,) = [a for w, a in dockerfile() if w == name][-1:]
    return last


def test_the_compose_file_is_valid_compose() -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    assert [e.message for e in validator.iter_errors(compose())] == []
    misspelt = compose()
    misspelt["services"]["postgres"]["imagee"] = "x"  # the schema does catch a wrong key
    assert not validator.is_valid(misspelt)


def test_images_are_pinned_to_exact_versions() -> None:
    tags = {n: s["image"].rpartition(":")[2] for n, s in services().items()}
    for name, tag in tags.items():
        assert re.match(r"\d+\.\d+", tag), f"{name}: {tag!r} is not an exact version"
    assert tags["asterisk"].startswith("22.")
    text = (DOCKER / "compose.yaml").read_text()
    for name, service in services().items():  # where an admin pins each digest
        if service["image"] != VERBATIM_IMAGE:
            assert f"{service['image']}@sha256:" in text, name


def test_every_command_is_a_verbatim_command() -> None:
    commands = {n: s["command"] for n, s in ours().items() if n != "init-volumes"}
    assert set(commands) == {"migrate", "prompts", "verbatim"}
    assert commands["verbatim"] == json.loads(instruction("CMD")) == ["run"]
    assert json.loads(instruction("ENTRYPOINT")) == ["verbatim"]
    for argv in commands.values():
        _parser().parse_args(argv)  # exits (SystemExit) on an unknown command or option
    # The doctor command the compose file's header gives, too.
    text = (DOCKER / "compose.yaml").read_text()
    header = re.search(r"docker compose run --rm verbatim (.+)", text)
    assert header is not None
    _parser().parse_args(shlex.split(header[1]))


def test_the_container_config_passes_check_config() -> None:
    env = {k: v for k, v in env_example().items() if k.startswith("VERBATIM_")}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "verbatim"), "check-config",
         str(DOCKER / "verbatim.yaml")],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env}, timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "app verbatim" in out.stdout


def test_the_daemon_finds_its_config_and_volumes() -> None:
    env = dict(word.split("=", 1) for word in instruction("ENV").split())
    where = env["VERBATIM_CONFIG"]
    storage = config()["storage"]
    for name, service in ours().items():
        if name == "init-volumes":
            continue
        assert mounts(service)[where] == "./verbatim.yaml", name
        if name != "prompts":
            assert mounts(service)[storage["spool_dir"]] == "spool", name
            state = mounts(service)["/var/lib/verbatim"]
            assert state == "verbatim", name
    assert PurePosixPath("/var/lib/verbatim") in PurePosixPath(storage["archive_dir"]).parents
    # Asterisk writes into the same volume, and the init service owns each volume's folder.
    assert mounts(services()["asterisk"])[storage["spool_dir"]] == "spool"
    init = services()["init-volumes"]
    for target in mounts(init):
        assert target in init["command"][0]


def test_prompts_go_where_asterisk_looks() -> None:
    argv = services()["prompts"]["command"]
    sounds = argv[argv.index("--sounds-dir") + 1]
    assert mounts(services()["prompts"])[sounds] == "sounds"
    assert mounts(services()["asterisk"])[sounds] == "sounds"  # the same path in both
    prompt = config()["calls"]["consent_prompt"]
    assert prompt.startswith(media_prefix_for(Path(sounds)))


def test_the_dialplan_mounted_is_the_projects() -> None:
    asterisk = mounts(services()["asterisk"])
    sources = {t: (DOCKER / s).resolve() for t, s in asterisk.items() if s.startswith(".")}
    for target, source in sources.items():
        assert source.is_file(), f"{target}: {source} does not exist"
        assert source.parent in (ASTERISK, ROOT / "dialplan"), source
    dialplan = {t: s for t, s in sources.items() if s.parent == ROOT / "dialplan"}
    assert sorted(s.name for s in dialplan.values()) == sorted(
        p.name for p in (ROOT / "dialplan").glob("*.conf"))
    includes = re.findall(r'^#include "(.+)"', (ASTERISK / "extensions.conf").read_text(),
                          re.MULTILINE)
    assert sorted(f"/etc/asterisk/{i}" for i in includes) == sorted(dialplan)
    # every config file written for Asterisk is mounted (none forgotten)
    assert {s.name for s in sources.values() if s.parent == ASTERISK} == {
        p.name for p in ASTERISK.iterdir()}


def _ini(name: str) -> dict[str, dict[str, str]]:
    """A config file's sections (last one of a name wins) → key → value."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for raw in (ASTERISK / name).read_text().splitlines():
        line = raw.split(";")[0].strip()
        if line.startswith("[") and "]" in line:
            current = sections.setdefault(line[1:line.index("]")], {})
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current[key.strip().rstrip(">")] = value.strip()
    return sections


def _written(conf: str) -> str:
    """What start-asterisk.sh's printf writes into the generated file `conf` (its format)."""
    script = (ASTERISK / "start-asterisk.sh").read_text()
    formats: dict[str, str] = {target: fmt for fmt, target in re.findall(
        r"printf '([^']*)' \\\n[^>]*> (\S+)", script)}
    assert conf in formats, sorted(formats)
    return formats[conf]


def test_asterisk_names_the_users_ports_and_app_verbatim_uses() -> None:
    conf = config()
    ari = urlsplit(conf["ari"]["url"])
    http = _ini("http.conf")["general"]
    assert (http["enabled"], http["bindaddr"], int(http["bindport"])) == (
        "yes", ari.hostname, ari.port)
    assert _ini("ari.conf")["general"]["enabled"] == "yes"
    assert '#include "verbatim_ari_user.conf"' in (ASTERISK / "ari.conf").read_text()
    ari_user = _written("verbatim_ari_user.conf")
    assert ari_user.startswith(f"[{conf['ari']['username']}]\\ntype = user")
    manager = _ini("manager.conf")["general"]
    assert (manager["enabled"], manager["bindaddr"], int(manager["port"])) == (
        "yes", conf["ami"]["host"], conf["ami"]["port"])
    ami_user = _written("verbatim_ami_user.conf")
    assert ami_user.startswith(f"[{conf['ami']['username']}]\\n")
    assert "read = reporting" in ami_user and "permit = 127.0.0.1/" in ami_user
    # The app the dialplan hands calls to, and the contexts the phones and trunk enter.
    stasis = set(re.findall(r"Stasis\((\w+),", (ROOT / "dialplan" / "verbatim.conf").read_text()))
    assert stasis == {conf["ari"]["app"]}
    pjsip = (ASTERISK / "pjsip.conf").read_text()
    extensions = _ini("extensions.conf")
    for context in set(re.findall(r"^context = (\S+)", pjsip, re.MULTILINE)):
        assert context in extensions, context
    # The dial strings reach these endpoints: phones by extension, the trunk by name.
    endpoints = set(re.findall(r"^\[(\w+)\](?:\(phone\))?\n(?:type = endpoint|auth)", pjsip,
                               re.MULTILINE))
    phones = {e for e in endpoints if e != "trunk"}
    assert phones == {"201", "202"} and "trunk" in endpoints
    assert conf["calls"]["dial_strings"]["outbound"].endswith("@trunk")
    secrets = {k: v for k, v in env_example().items() if k.startswith("VERBATIM_")}
    loaded = load_config(DOCKER / "verbatim.yaml", secrets)
    assert all(loaded.calls.extensions.fullmatch(p) for p in phones)


def test_the_image_runs_as_non_root_on_a_read_only_root() -> None:
    user, _, group = instruction("USER").partition(":")
    assert int(user) != 0 and int(group) != 0
    assert any(f"--uid {user} " in a for w, a in dockerfile() if w == "RUN")  # a user of its own
    for name, service in ours().items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert service.get("user", user) == ("0:0" if name == "init-volumes" else user), name
    # The healthcheck asks the daemon's own listener, where verbatim.yaml puts it.
    health = instruction("HEALTHCHECK")
    url = re.search(r"http://[^']+", health)
    assert url is not None
    metrics = config()["metrics"]
    assert url[0] == f"http://{metrics['host']}:{metrics['port']}/healthz" and metrics["enabled"]
    assert '"/healthz"' in (ROOT / "recorder" / "service" / "metrics.py").read_text()


def test_the_env_example_names_every_variable() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (DOCKER / "compose.yaml").read_text()))
    example = env_example()
    assert used <= set(example), used - set(example)
    verbatim = {k for k in example if k.startswith("VERBATIM_")}
    assert verbatim <= {v for k, v in vars(model).items() if k.startswith("ENV_")}
    assert {"VERBATIM_ARI_PASSWORD", "VERBATIM_DATABASE_DSN", "POSTGRES_PASSWORD",
            "VERBATIM_AMI_SECRET"} <= set(example)
    # the DSN reaches the postgres service with its password
    dsn = urlsplit(example["VERBATIM_DATABASE_DSN"])
    assert (dsn.hostname, dsn.password) == ("postgres", example["POSTGRES_PASSWORD"])
    script = (ASTERISK / "start-asterisk.sh").read_text()
    for variable in re.findall(r"\$\{(\w+):\?", script):
        assert variable in services()["asterisk"]["environment"], variable
