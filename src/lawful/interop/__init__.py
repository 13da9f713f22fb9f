"""Bridges to the outside world: fideslang datasets in and out, and drafts from live databases.

- `fides.import_fides` / `fides.export_fides`: Ethyca's fideslang dataset YAML <-> `System`s.
- `fides.systems_yaml`: systems as the YAML of a manifest's `systems:` section, to paste.
- `reflect.reflect`: a draft `System` read from a live database's schema.
- `envurl.expand_url`: `${VAR}` and `${VAR:-default}` in database URLs.
"""

from lawful.interop.envurl import expand_url
from lawful.interop.fides import export_fides, import_fides, import_fides_text, systems_yaml
from lawful.interop.reflect import reflect

__all__ = [
    "expand_url",
    "export_fides",
    "import_fides",
    "import_fides_text",
    "reflect",
    "systems_yaml",
]
