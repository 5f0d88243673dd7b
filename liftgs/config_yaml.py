"""Reading an ``ns-train`` run's ``config.yml`` without letting the file run code.

nerfstudio writes its configs with ``yaml.dump`` and reads them back with PyYAML's full ``yaml.Loader``,
which builds any Python object a tag names: ``!!python/object/apply:os.system ["..."]`` runs a shell
command. ``ConfigLoader`` is a ``yaml.SafeLoader`` that builds only what those dumps hold:

- ``!!python/object:X`` — X a dataclass of ``nerfstudio``, ``liftgs`` or ``method_configs`` (the configs);
- ``!!python/name:X`` — X a class of those packages or of ``torch.optim`` (the configs' ``_target``);
- ``!!python/object/apply:X [args]`` — X a ``pathlib`` path class (string arguments) or an ``Enum`` of the
  packages above (nerfstudio's ``EventName``);
- ``!!python/tuple`` and the plain YAML types.

Every other tag (functions, ``apply`` of anything else, ``!!python/module``, classes of other packages,
local tags) is refused with a ``ConfigYAMLError`` naming the tag and its line; nothing is built or called.
A module is imported only when its name lies inside an allowed package.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import pathlib
from pathlib import Path
from typing import Any

import yaml

CONFIG_PACKAGES = ("nerfstudio", "liftgs", "method_configs")
"""Packages whose dataclasses, classes and enums a config may name."""

TARGET_PACKAGES = (*CONFIG_PACKAGES, "torch.optim")
"""Packages whose classes a config may name with ``!!python/name:`` (optimiser and scheduler targets)."""

PATH_MODULES = ("pathlib", "pathlib._local")
"""Modules whose ``PurePath`` subclasses ``!!python/object/apply:`` may build (``pathlib._local``: 3.13+)."""

_PYTHON_TAG = "tag:yaml.org,2002:python/"


class ConfigYAMLError(ValueError):
    """A config YAML that is unreadable or names something the loader refuses; the message is one line."""


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _inside(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` plus the Python tags of nerfstudio config dumps, restricted as the module says."""

    def refuse(self, node: yaml.Node, reason: str) -> ConfigYAMLError:
        """The error for ``node``: ``line N: refusing YAML tag !!...: reason``."""
        return ConfigYAMLError(
            f"line {node.start_mark.line + 1}: refusing YAML tag {_short_tag(node.tag)}: {reason}"
        )

    def find_class(self, name: str, node: yaml.Node, packages: tuple[str, ...]) -> type:
        """The class ``module.Name`` if the module lies in ``packages`` and the name is a class defined there.

        Raises:
            ConfigYAMLError: anything else; the module is not imported unless it lies in ``packages``.
        """
        module_name, _, attribute = name.rpartition(".")
        allowed = ", ".join(packages)
        if not module_name or not _inside(module_name, packages):
            raise self.refuse(node, f"{module_name or name!r} is outside {allowed}")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise self.refuse(node, f"cannot import {module_name} ({error})") from None
        value = getattr(module, attribute, None)
        if not isinstance(value, type):
            raise self.refuse(node, f"{name} is not a class")
        if not _inside(value.__module__, packages):
            raise self.refuse(node, f"{name} is {value.__module__}.{value.__qualname__}, outside {allowed}")
        return value

    def construct_dataclass(self, suffix: str, node: yaml.Node):
        """``!!python/object:X {field: value}``: a config dataclass, its fields set as nerfstudio's loader
        does (no ``__init__``); fields missing from the file get their declared defaults."""
        cls = self.find_class(suffix, node, CONFIG_PACKAGES)
        if not dataclasses.is_dataclass(cls):
            raise self.refuse(node, f"{suffix} is not a config dataclass")
        if not isinstance(node, yaml.MappingNode):
            raise self.refuse(node, "expected a mapping of field values")
        instance = cls.__new__(cls)
        yield instance
        state = self.construct_mapping(node)
        for field in dataclasses.fields(cls):
            if field.name in state:
                continue
            if field.default_factory is not dataclasses.MISSING:
                state[field.name] = field.default_factory()
            elif field.default is not dataclasses.MISSING:
                state[field.name] = field.default
        for key, value in state.items():
            if not isinstance(key, str) or key.startswith("__"):
                raise self.refuse(node, f"field name {key!r} is not allowed")
            object.__setattr__(instance, key, value)

    def construct_class(self, suffix: str, node: yaml.Node) -> type:
        """``!!python/name:X ''``: a class (a config's ``_target``)."""
        return self.find_class(suffix, node, TARGET_PACKAGES)

    def construct_apply(self, suffix: str, node: yaml.Node) -> Any:
        """``!!python/object/apply:X [args]``: a ``pathlib`` path or an enum member of the config packages."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.refuse(node, "only the short form with a list of arguments is allowed")
        if _inside(suffix.rpartition(".")[0], PATH_MODULES):
            cls = self.find_class(suffix, node, PATH_MODULES)
            if not issubclass(cls, pathlib.PurePath):
                raise self.refuse(node, f"{suffix} is not a path class")
        else:
            cls = self.find_class(suffix, node, CONFIG_PACKAGES)
            if not issubclass(cls, enum.Enum):
                raise self.refuse(node, "only paths and enums may be built from arguments")
        arguments = self.construct_sequence(node, deep=True)
        if not all(isinstance(argument, str | int) for argument in arguments):
            raise self.refuse(node, "arguments must be strings or integers")
        try:
            return cls(*arguments)
        except (ValueError, TypeError, NotImplementedError) as error:
            raise self.refuse(node, f"{suffix}{tuple(arguments)}: {error}") from None

    def construct_tuple(self, node: yaml.Node) -> tuple:
        """``!!python/tuple [...]``."""
        return tuple(self.construct_sequence(node))

    def construct_refused(self, node: yaml.Node) -> Any:
        """Every tag without a constructor above."""
        if node.tag.startswith(_PYTHON_TAG):
            raise self.refuse(node, "a config.yml may build only config dataclasses, paths, enums and tuples")
        raise self.refuse(node, "unknown tag")


ConfigLoader.add_multi_constructor(_PYTHON_TAG + "object:", ConfigLoader.construct_dataclass)
ConfigLoader.add_multi_constructor(_PYTHON_TAG + "name:", ConfigLoader.construct_class)
ConfigLoader.add_multi_constructor(_PYTHON_TAG + "object/apply:", ConfigLoader.construct_apply)
ConfigLoader.add_constructor(_PYTHON_TAG + "tuple", ConfigLoader.construct_tuple)
ConfigLoader.add_constructor(None, ConfigLoader.construct_refused)


def read_config_yaml(path: str | Path) -> Any:
    """The object a ``yaml.dump``-ed config file holds, built with ``ConfigLoader``.

    Raises:
        ConfigYAMLError: unreadable file, invalid YAML or a refused tag; one line that starts with the path.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigYAMLError(f"{path}: cannot read: {error}") from None
    try:
        return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - ConfigLoader is a restricted SafeLoader
    except ConfigYAMLError as error:
        raise ConfigYAMLError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise ConfigYAMLError(f"{path}: not valid YAML: {reason}") from None
