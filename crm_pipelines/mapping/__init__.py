"""Field mapping as configuration: provider field <-> local column, per provider and integration.

The built-in mapping of each provider is a YAML file shipped in ``defaults/``; an integration may
name its own file (setting ``mapping_file``) whose fields replace or extend the defaults.
:mod:`~crm_pipelines.mapping.spec` reads and checks files, :mod:`~crm_pipelines.mapping.compiled`
turns one into functions the readers and writers call.
"""

from crm_pipelines.mapping.compiled import CompiledMapping, MappedField, compiled, default
from crm_pipelines.mapping.spec import MappingError, MappingSpec, load, read_file

__all__ = ["CompiledMapping", "MappedField", "MappingError", "MappingSpec", "compiled", "default", "load", "read_file"]
