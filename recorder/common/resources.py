"""Files the package ships beside its code: migrations, consent prompts, dialplan snippets and
example configurations.

They live in the repository's top-level folders (migrations/, consent_prompts/, dialplan/,
config/); recorder/data/ holds a link to each, so a wheel carries them as package data and the
source tree keeps one copy. From a checkout or an installed wheel alike, `shipped(name)` is the
folder.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final, Literal

Shipped = Literal["migrations", "consent_prompts", "dialplan", "config"]
SHIPPED: Final[tuple[Shipped, ...]] = ("migrations", "consent_prompts", "dialplan", "config")


def shipped(name: Shipped) -> Path:
    # An installed wheel is plain files in site-packages, so the resource is a real path.
    return Path(str(files("recorder").joinpath("data", name)))
