"""fastlayers.ops, fastlayers.reference and docs/ops.md name the same ops with the same signatures.

The contract (docs/ops.md, top): every public op exists as `fastlayers.<name>` and as
`fastlayers.reference.<name>` with the same signature, and docs/ops.md lists it with its full
signature. These tests say exactly what is missing or stale, so that a branch that adds ops can fix
the gap after a merge without reading this file:

- every name in fastlayers.ops.__all__ has a same-named function in fastlayers.reference with the
  same signature, and every public function of fastlayers.reference is in fastlayers.ops.__all__;
- docs/ops.md has, for every op, a backticked entry `name(<its full signature>)` (parameter names,
  order, defaults, and `*` for keyword-only parameters, as Python would accept it in a `def`);
  and every backticked `name(<parameters>)` entry in its op sections names an op of
  fastlayers.ops.__all__ (the "Differences from PyTorch" section may quote PyTorch freely).
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import re

import pytest

import fastlayers as fl
import fastlayers.reference as ref

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "ops.md"
# Sections of docs/ops.md whose backticked calls are not op entries (they may quote PyTorch).
FREE_SECTIONS = ("differences from pytorch",)
_SPAN = re.compile(r"`([a-z_][a-z0-9_]*)\(([^`]*)\)`")
_MISSING = object()


def _fmt_default(v) -> str:
    return f'"{v}"' if isinstance(v, str) else repr(v)


def expected_entry(name: str, fn) -> str:
    """The docs/ops.md entry text for fn, e.g. `pad(x, pad, mode="constant", value=None)`."""
    parts, star = [], False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if p.kind is p.VAR_POSITIONAL:
            parts.append("*" + p.name)
            star = True
            continue
        if p.kind is p.VAR_KEYWORD:
            parts.append("**" + p.name)
            continue
        parts.append(p.name if p.default is p.empty else f"{p.name}={_fmt_default(p.default)}")
    return f"`{name}({', '.join(parts)})`"


def _params_of(fn) -> list[tuple]:
    """(name, kind, default) per parameter; kind 'pos' | 'kw' | 'var' | 'varkw'."""
    kinds = {inspect.Parameter.POSITIONAL_ONLY: "pos", inspect.Parameter.POSITIONAL_OR_KEYWORD: "pos",
             inspect.Parameter.KEYWORD_ONLY: "kw", inspect.Parameter.VAR_POSITIONAL: "var",
             inspect.Parameter.VAR_KEYWORD: "varkw"}
    return [(p.name, kinds[p.kind], _MISSING if p.default is p.empty else p.default)
            for p in inspect.signature(fn).parameters.values()]


def _params_of_text(args: str):
    """The parameter list of a docs entry, or None when the text is not a valid `def` parameter list
    (a call with values, prose, an ellipsis)."""
    try:
        tree = ast.parse(f"def _f({args}): pass")
        a = tree.body[0].args
        pos = a.posonlyargs + a.args
        pos_defaults = [_MISSING] * (len(pos) - len(a.defaults)) + [ast.literal_eval(d) for d in a.defaults]
        out = [(p.arg, "pos", d) for p, d in zip(pos, pos_defaults)]
        if a.vararg is not None:
            out.append((a.vararg.arg, "var", _MISSING))
        out += [(p.arg, "kw", _MISSING if d is None else ast.literal_eval(d))
                for p, d in zip(a.kwonlyargs, a.kw_defaults)]
        if a.kwarg is not None:
            out.append((a.kwarg.arg, "varkw", _MISSING))
        return out
    except (SyntaxError, ValueError):
        return None


def _same_default(a, b) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return type(a) is type(b) and a == b if isinstance(a, (str, tuple, list)) else a == b


def _same_params(doc, real) -> bool:
    return len(doc) == len(real) and all(
        d[0] == r[0] and d[1] == r[1] and _same_default(d[2], r[2]) for d, r in zip(doc, real))


def doc_entries(text: str) -> list[tuple[str, str, int]]:
    """(name, parameter text, line number) of every backticked `name(...)` outside the preamble and
    the free sections."""
    entries, section = [], None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            section = line[3:].strip().lower()
            continue
        if section is None or section.startswith(FREE_SECTIONS):
            continue
        entries += [(m.group(1), m.group(2), lineno) for m in _SPAN.finditer(line)]
    return entries


def ops_public() -> dict:
    return {name: getattr(fl.ops, name) for name in fl.ops.__all__}


def reference_public() -> dict:
    return {name: obj for name, obj in vars(ref).items()
            if not name.startswith("_") and inspect.isfunction(obj)}


def test_ops_all_names_are_unique_and_exist():
    dup = sorted({n for n in fl.ops.__all__ if fl.ops.__all__.count(n) > 1})
    assert not dup, f"fastlayers.ops.__all__ lists these names twice: {dup}"
    absent = [n for n in fl.ops.__all__ if not callable(getattr(fl.ops, n, None))]
    assert not absent, f"fastlayers.ops.__all__ names these, but fastlayers.ops has no such function: {absent}"
    not_top = [n for n in fl.ops.__all__ if getattr(fl, n, None) is not getattr(fl.ops, n)]
    assert not not_top, f"fastlayers.<name> is not fastlayers.ops.<name> for: {not_top}"


def test_ops_and_reference_name_the_same_functions_with_the_same_signatures():
    ops, refs = ops_public(), reference_public()
    problems = []
    for name in sorted(set(ops) - set(refs)):
        problems.append(f"fastlayers.reference has no `{name}`: add {expected_entry(name, ops[name])} to "
                        f"python/fastlayers/reference/ (and to its module's __all__)")
    for name in sorted(set(refs) - set(ops)):
        problems.append(f"fastlayers.reference.{name} is not a public op: add it to fastlayers.ops "
                        f"(and its module's __all__) or make it private (_{name})")
    for name in sorted(set(ops) & set(refs)):
        if not _same_params(_params_of(ops[name]), _params_of(refs[name])):
            problems.append(f"signatures differ: fastlayers.{name}{inspect.signature(ops[name])} but "
                            f"fastlayers.reference.{name}{inspect.signature(refs[name])}")
    assert not problems, "fastlayers.ops and fastlayers.reference are out of step:\n  " + "\n  ".join(problems)


def test_docs_list_every_op_with_its_full_signature_and_nothing_else():
    text = DOCS.read_text(encoding="utf-8")
    entries = doc_entries(text)
    ops = ops_public()
    problems = []
    by_name: dict[str, list] = {}
    for name, args, lineno in entries:
        by_name.setdefault(name, []).append((args, lineno))
    for name, fn in ops.items():
        want = expected_entry(name, fn)
        found = by_name.get(name, [])
        if any(p is not None and _same_params(p, _params_of(fn)) for p in (_params_of_text(a) for a, _ in found)):
            continue
        if found:
            seen = "; ".join(f"line {ln}: `{name}({a})`" for a, ln in found)
            problems.append(f"{name}: docs/ops.md has {seen}, but the full signature is {want}: write it out")
        else:
            problems.append(f"{name}: no entry in docs/ops.md: add {want} to its family's section")
    for name, args, lineno in entries:
        if name not in ops and _params_of_text(args) is not None:
            problems.append(f"docs/ops.md line {lineno} documents `{name}({args})`, which is not in "
                            f"fastlayers.ops.__all__ (a removed or renamed op, or a missing export)")
    assert not problems, "docs/ops.md and fastlayers.ops are out of step:\n  " + "\n  ".join(problems)


def test_the_checker_reports_what_is_missing():
    # The checker itself: a missing entry, a stale signature and an unknown op are each reported.
    def op(x, pad, mode="constant", *, value=None):
        pass

    assert expected_entry("op", op) == '`op(x, pad, mode="constant", *, value=None)`'
    assert _same_params(_params_of_text('x, pad, mode="constant", *, value=None'), _params_of(op))
    assert not _same_params(_params_of_text('x, pad, mode="constant", value=None'), _params_of(op))
    assert not _same_params(_params_of_text('x, pad, mode="reflect", *, value=None'), _params_of(op))
    assert not _same_params(_params_of_text("x, pad"), _params_of(op))
    assert _params_of_text("x, 2") is None and _params_of_text("..., *, need_grad_x=True") is None
    text = "intro `float(loss)`\n## a family\n- `foo(x, y=1)` and `bar(grad_out, x)`\n## Differences from PyTorch\n- `baz(x)`\n"
    assert [(n, a) for n, a, _ in doc_entries(text)] == [("foo", "x, y=1"), ("bar", "grad_out, x")]


@pytest.mark.parametrize("name", ["README.md"])
def test_readme_op_table_names_every_forward_op(name):
    readme = (DOCS.parents[1] / name).read_text(encoding="utf-8")
    table = "\n".join(line for line in readme.splitlines() if line.startswith("|"))
    named = set(re.findall(r"`([a-z_][a-z0-9_]*)`", table))
    # `<name>_backward` in a row stands for the backward of every op in that row.
    generic_backward = "<name>_backward" in table
    missing = [n for n in fl.ops.__all__
               if n not in named and not (generic_backward and n.endswith("_backward") and n[:-9] in named)]
    assert not missing, f"README.md's op table does not name: {missing} (add them to their family's row)"
