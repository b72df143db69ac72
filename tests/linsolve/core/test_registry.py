"""The registries by name (solvers, problem families, DCDM networks, surrogate models) share
one helper, ``linsolve.core.registry.Registry``: a name registered twice is refused with the
package's duplicate error, an unknown name raises the package's unknown-name error listing
every registered name, and the public functions agree with the registry object."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

torch = pytest.importorskip("torch")

import datagen  # noqa: E402
import linsolve  # noqa: E402
import operators  # noqa: E402
from datagen.family import FAMILIES, DuplicateFamilyError, Family, FamilyError, UnknownFamilyError  # noqa: E402
from linsolve.core.errors import DuplicateNameError, OptionError, UnknownNameError  # noqa: E402
from linsolve.core.registry import SOLVERS, Registry  # noqa: E402
from linsolve.learned.dcdm import model as dcdm_model  # noqa: E402
from linsolve.learned.dcdm.networks import NETWORKS, UnknownNetworkError, register_network  # noqa: E402
from operators.registry import MODELS  # noqa: E402


@dataclass
class Case:
    registry: Registry
    register: Callable        # register(name) -> class decorator
    lookup: Callable          # the package's public lookup by name
    names: Callable           # the package's public list of names
    unknown: type             # the package's unknown-name error
    duplicate: type           # the package's duplicate-name error
    invalid: type             # the error for a name that is not a non-empty string
    known: str                # a built-in name
    base: type = object       # what a registered class derives from


def _family_register(name):
    def deco(cls):
        cls.name = name
        return datagen.register_family(cls)
    return deco


CASES = {
    "solvers": Case(SOLVERS, linsolve.register, linsolve.solver_class, linsolve.available_solvers,
                    linsolve.UnknownSolverError, DuplicateNameError, OptionError, "cg"),
    "families": Case(FAMILIES, _family_register, datagen.get_family, datagen.available_families,
                     UnknownFamilyError, DuplicateFamilyError, FamilyError, "poisson", Family),
    "dcdm-networks": Case(NETWORKS, register_network, NETWORKS.get, dcdm_model.available_models,
                          UnknownNetworkError, DuplicateNameError, OptionError, "mg-cycle", torch.nn.Module),
    "surrogate-models": Case(MODELS, operators.register_model, operators.model_class,
                             operators.available_models, operators.UnknownModelError,
                             operators.DuplicateModelError, operators.OptionError, "fno", torch.nn.Module),
}


@pytest.fixture(params=list(CASES))
def case(request):
    c = CASES[request.param]
    c.names()  # the built-ins are registered before the snapshot
    before = dict(c.registry.entries)
    yield c
    # whatever a test registered is removed again, so the other tests see the built-ins only
    c.registry.entries.clear()
    c.registry.entries.update(before)


def _new_class(c: Case):
    return type("Extra", (c.base,), {})


def test_errors_are_value_errors_of_the_shared_kinds(case):
    assert issubclass(case.unknown, UnknownNameError) and issubclass(case.unknown, ValueError)
    assert issubclass(case.duplicate, DuplicateNameError) and issubclass(case.duplicate, ValueError)
    assert issubclass(case.invalid, ValueError)


def test_public_names_are_the_registry_names_sorted(case):
    names = case.names()
    assert names == sorted(names) == case.registry.names()
    assert case.known in names
    assert case.lookup(case.known) is case.registry.get(case.known)


def test_unknown_name_lists_every_registered_name(case):
    with pytest.raises(case.unknown) as exc:
        case.lookup("no-such-name")
    message = str(exc.value)
    assert "'no-such-name'" in message
    assert message.endswith("available: " + ", ".join(case.registry.names()))


@pytest.mark.parametrize("name", [None, 3, ["cg"]])
def test_lookup_of_a_non_string_is_an_unknown_name(case, name):
    with pytest.raises(case.unknown):
        case.registry.get(name)


def test_duplicate_name_is_refused_and_keeps_the_first(case):
    first = case.registry.get(case.known)
    with pytest.raises(case.duplicate, match=repr(case.known)):
        case.register(case.known)(_new_class(case))
    assert case.registry.get(case.known) is first


def test_new_name_registers_and_removes(case):
    cls = _new_class(case)
    assert case.register("registry-test-extra")(cls) is cls
    assert case.lookup("registry-test-extra") is cls
    assert "registry-test-extra" in case.names() and "registry-test-extra" in case.registry
    assert case.registry.remove("registry-test-extra") is cls
    assert "registry-test-extra" not in case.names()
    with pytest.raises(case.unknown):
        case.lookup("registry-test-extra")


def test_same_class_registered_twice_is_one_entry(case):
    cls = _new_class(case)
    case.register("registry-test-again")(cls)
    case.register("registry-test-again")(cls)
    assert case.names().count("registry-test-again") == 1


@pytest.mark.parametrize("name", ["", None, 7])
def test_name_that_is_not_a_nonempty_string_is_refused(case, name):
    with pytest.raises(case.invalid):
        case.register(name)(_new_class(case))
    assert name not in case.registry.entries


def test_register_stores_the_name_on_the_class():
    assert linsolve.solver_class("gmres").name == "gmres"
    assert operators.model_class("ifno").name == "ifno"
    assert NETWORKS.get("sym-mg").arch == "sym-mg"
    assert datagen.get_family("darcy").name == "darcy"


def test_family_registration_refuses_a_class_that_is_not_a_family():
    with pytest.raises(FamilyError):
        datagen.register_family(type("NotAFamily", (), {"name": "registry-test-plain"}))
    assert "registry-test-plain" not in FAMILIES


def test_dcdm_build_model_refuses_an_unknown_architecture_listing_the_known_ones():
    with pytest.raises(UnknownNetworkError, match="mg-cycle, mg-unet, sym-mg"):
        dcdm_model.build_model({"arch": "mg-nothing", "dim": 2})


# --- the helper itself ----------------------------------------------------------------------

def test_loader_runs_once_and_only_on_first_lookup():
    calls = []
    reg = Registry("widget", loader=lambda: (calls.append(1), reg.add("built-in", int)))
    reg.add("user", str)
    assert calls == []
    assert reg.names() == ["built-in", "user"] and calls == [1]
    assert reg.get("built-in") is int and reg.get("user") is str and calls == [1]


def test_loader_may_look_names_up_while_it_runs():
    seen = []

    def load():
        reg.add("a", int)
        seen.append(reg.names())     # must not call the loader again

    reg = Registry("widget", loader=load)
    assert reg.names() == ["a"] and seen == [["a"]]


def test_helper_raises_the_error_types_it_is_given():
    class Unknown(UnknownNameError):
        pass

    class Twice(DuplicateNameError):
        pass

    class BadName(OptionError):
        pass

    reg = Registry("gadget", unknown=Unknown, duplicate=Twice, invalid=BadName)
    reg.add("x", int)
    with pytest.raises(Unknown, match=r"^unknown gadget 'y'; available: x$"):
        reg.get("y")
    with pytest.raises(Twice, match=r"^gadget name 'x' is already registered to builtins.int$"):
        reg.add("x", float)
    with pytest.raises(BadName, match="non-empty string"):
        reg.register("")
    with pytest.raises(Unknown):
        reg.remove("y")
    assert reg.get("x") is int
