"""No import circle in the runtime, annotations included (issue 77): the import-linter contracts skip
imports under TYPE_CHECKING, which is where agent <-> answerfirst <-> opening and core <-> model hid."""

from __future__ import annotations

import grimp


def package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_two_runtime_packages_import_each_other_even_for_annotations():
    graph = grimp.build_graph("agentfleet_runtime", exclude_type_checking_imports=False)
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if package(imported) != package(module):
                edges.setdefault(package(module), set()).add(package(imported))
    both = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert not both, f"runtime packages that import each other: {both}"


def test_no_module_of_the_loop_or_the_answering_layer_is_in_a_circle():
    graph = grimp.build_graph("agentfleet_runtime", exclude_type_checking_imports=False)
    for layer in ("agentfleet_runtime.loop", "agentfleet_runtime.answering"):
        modules = sorted(m for m in graph.modules if m.startswith(layer + "."))
        circles = [
            (a, b)
            for a in modules
            for b in modules
            if a != b
            and graph.direct_import_exists(importer=a, imported=b)
            and graph.chain_exists(importer=b, imported=a)
        ]
        assert not circles, f"{layer}: modules in an import circle: {circles}"
