"""The build's events, in the order they fire, wired to the stages.

``config-inited``
    check the configuration, verify and apply the snapshot, read the baseline.
``builder-inited`` (around intersphinx's loader)
    capture intersphinx's log while it loads, then report each inventory once.
``missing-reference`` (before and after intersphinx) and a post-transform before
intersphinx's ``:external:`` resolver
    explain each reference that does not resolve.
``build-finished``
    summaries, the stale baseline, ``xref_check.json``.

Resolution runs in the main process even with ``-j``, so the per-build state lives in
memory, keyed by the environment; findings of documents an incremental build does not
rewrite are kept in a small file next to the doctrees.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import weakref
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, cast

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.errors import ConfigError, NoUri
from sphinx.ext.intersphinx import (
    resolve_reference_any_inventory,
    resolve_reference_detect_inventory,
    resolve_reference_in_inventory,
)
from sphinx.transforms.post_transforms import ReferencesResolver, SphinxPostTransform

from sphinxext.xref_check._check import Checker, Finding, Reference, reference_of
from sphinxext.xref_check._compat import intersphinx_projects
from sphinxext.xref_check._config import XrefConfig, validate_config
from sphinxext.xref_check._installed import clear_caches
from sphinxext.xref_check._load import LoadCapture, inspect_inventories, version_skew
from sphinxext.xref_check._report import (
    REPORT_NAME,
    STATE_NAME,
    Baseline,
    merge_state,
    summarise_unavailable,
    warn_finding,
    warn_stale,
)
from sphinxext.xref_check._shared import LOGGER, Subtype, emit_warning
from sphinxext.xref_check._source import clear_caches as clear_source_caches

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sphinx.application import Sphinx
    from sphinx.config import Config
    from sphinx.environment import BuildEnvironment


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Settings:
    """What ``config-inited`` decided."""

    config: XrefConfig
    snapshot_files: dict[str, Path]
    baseline: Baseline | None
    #: Inventories the snapshot took out of the build: ``{name: (uri, why)}``.
    withheld: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(kw_only=True, slots=True)
class _BuildState:
    settings: _Settings
    checker: Checker
    #: ``intersphinx_resolve_self``, read once: every reference needs it.
    resolve_self: bool
    findings: list[Finding] = dataclasses.field(default_factory=list)
    written: set[str] = dataclasses.field(default_factory=set)


_SETTINGS: weakref.WeakKeyDictionary[Config, _Settings] = weakref.WeakKeyDictionary()
_CAPTURE: weakref.WeakKeyDictionary[Config, LoadCapture] = weakref.WeakKeyDictionary()
_STATE: weakref.WeakKeyDictionary[BuildEnvironment, _BuildState] = weakref.WeakKeyDictionary()


def on_config_inited(app: Sphinx, config: Config) -> None:
    """Check the settings, apply the snapshot, read the baseline.

    Whatever cannot be used is an error, and the build goes on without it (or
    with the default) and fails at the end: sphinx-build would print any
    exception raised here as a crash report.
    """
    confdir = Path(app.confdir)
    problems = validate_config(config, confdir / "conf.py")
    xref = XrefConfig.from_config(config, confdir)
    files: dict[str, Path] = {}
    withheld: dict[str, tuple[str, str]] = {}
    if xref.snapshot is not None:
        # reading and verifying a snapshot needs hashlib and json: only builds with one
        from sphinxext.xref_check._snapshot import apply_snapshot

        files, snapshot_problems, withheld = apply_snapshot(
            config=config, xref=xref, confdir=confdir
        )
        problems += [(f"xref_check_snapshot: {problem}", None) for problem in snapshot_problems]
    baseline = None
    if xref.baseline is not None:
        try:
            baseline = Baseline.read(xref.baseline)
        except ConfigError as exc:
            problems.append((f"{exc}; this build uses no baseline", None))
    for problem, location in problems:
        LOGGER.error("%s", problem, location=location)
    if problems:
        app.statuscode = 1
    _SETTINGS[config] = _Settings(
        config=xref, snapshot_files=files, baseline=baseline, withheld=withheld
    )


def on_builder_inited_before_load(app: Sphinx) -> None:
    capture = LoadCapture()
    capture.start()
    _CAPTURE[app.config] = capture


def on_builder_inited_after_load(app: Sphinx) -> None:
    capture = _CAPTURE.pop(app.config, None)
    messages: list[str] = []
    if capture is not None:
        capture.stop()
        messages = capture.messages
    settings = _SETTINGS[app.config]
    env = app.env
    statuses = inspect_inventories(
        projects=intersphinx_projects(app.config.intersphinx_mapping),
        named_inventory=getattr(env, "intersphinx_named_inventory", {}),
        messages=messages,
        srcdir=Path(app.srcdir),
        distributions=settings.config.distributions,
        snapshot_files=settings.snapshot_files,
        withheld=settings.withheld,
    )
    python_version = (sys.version_info.major, sys.version_info.minor)
    for status in statuses:
        if not status.loaded:
            emit_warning(
                Subtype.INVENTORY_UNAVAILABLE,
                "inventory %r did not load, so references into it are neither linked "
                "nor checked: %s",
                status.name,
                status.reason,
            )
            continue
        if status.damaged:
            emit_warning(
                Subtype.INVENTORY_UNAVAILABLE,
                "inventory %r loaded only in part, so references into what is missing "
                "are reported as not found: %s. Fix: point intersphinx_mapping at a valid "
                "objects.inv, or download it again",
                status.name,
                status.damaged,
            )
        if status.snapshot_for:
            emit_warning(
                Subtype.SNAPSHOT,
                "inventory %r: %s could not be reached; using the snapshot %s",
                status.name,
                status.snapshot_for,
                settings.snapshot_files[status.name],
            )
        skew = version_skew(status, python_version=python_version)
        if skew is not None:
            emit_warning(Subtype.VERSION_SKEW, skew)
    # what earlier builds in this process imported may have changed since
    clear_caches()
    clear_source_caches()
    checker = Checker(env=env, config=settings.config, statuses=statuses)
    _STATE[env] = _BuildState(
        settings=settings,
        checker=checker,
        resolve_self=bool(getattr(app.config, "intersphinx_resolve_self", False)),
    )


def _record(state: _BuildState, finding: Finding, node: pending_xref, ref: Reference) -> None:
    state.findings.append(finding)
    # a docstring's reference points at its line in the .py file, which the node
    # does not know
    location = ref.location if ref.location is not None else node
    warn_finding(finding, location=location, baseline=state.settings.baseline)


def _sphinx_silences(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> bool:
    """Whether Sphinx leaves *node* unlinked on purpose, and says nothing about it.

    Sphinx calls every ``missing-reference`` listener and takes the first answer,
    so this one cannot see the others': a reference that another listener
    resolves (the Python domain's builtin resolver takes ``None``, builtin classes
    and ``typing`` names) or declines with ``NoUri`` is asked of them again. One
    that ``nitpick_ignore`` or ``nitpick_ignore_regex`` lists is not warned about
    either.
    """
    domain = node.get("refdomain") or ""
    reftype = node["reftype"]
    target = node["reftarget"]
    config = app.config
    dtype = f"{domain}:{reftype}" if domain else reftype
    pairs = [(dtype, target)]
    if domain in {"", "std"}:
        pairs.append((reftype, target))
    ignore = config.nitpick_ignore
    if ignore and any(pair in ignore for pair in pairs):
        return True
    for type_pattern, target_pattern in config.nitpick_ignore_regex:
        for kind, name in pairs:
            if re.fullmatch(type_pattern, kind) and re.fullmatch(target_pattern, name):
                return True
    for handler in _other_resolvers(app):
        try:
            if handler(app, env, node.deepcopy(), contnode.deepcopy()) is not None:
                return True
        except NoUri:
            return True
        except Exception:  # the real call, earlier, succeeded or failed the build
            continue
    return False


def _other_resolvers(app: Sphinx) -> list[Callable[..., object]]:
    """The ``missing-reference`` listeners but intersphinx's and this extension's."""
    registered = app.events.listeners.get("missing-reference", ())
    listeners = sorted(registered, key=attrgetter("priority"))
    return [
        listener.handler
        for listener in listeners
        if listener.handler is not on_missing_reference
        and not getattr(listener.handler, "__module__", "").startswith("sphinx.ext.intersphinx")
    ]


def _reference(state: _BuildState, node: pending_xref, env: BuildEnvironment) -> Reference:
    checker = state.checker
    return reference_of(node, env=env, inventory_names=checker.statuses, files=checker.files)


def _intersphinx_resolves(
    state: _BuildState, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> bool:
    # With intersphinx_resolve_self, intersphinx rewrites the node it is given. Its
    # resolver only wraps the content node in the link it returns, which is thrown
    # away: a copy without children does, and costs nothing to make.
    probe = node.deepcopy() if state.resolve_self else node
    return resolve_reference_detect_inventory(env, probe, contnode.copy()) is not None


def on_missing_reference(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.TextElement | None:
    """Explain an in-scope reference unless intersphinx resolves it.

    Sphinx calls every ``missing-reference`` listener, whatever the others return, so
    whether intersphinx resolves the reference is found out here again: from its first
    lookup, repeated, else from intersphinx itself. When it does, the target is only
    checked against the installed package.
    """
    state = _STATE.get(env)
    if state is None:
        return None
    checker = state.checker
    resolved = checker.resolves_as_is(node)
    if resolved and not checker.may_be_gone(node.get("refdomain") or ""):
        return None  # linked, and no installed package to compare it with
    ref = _reference(state, node, env)
    if not checker.in_scope(ref):
        return None
    if resolved or _intersphinx_resolves(state, env, node, contnode):
        finding = checker.gone_from_installed(ref)
        if finding is not None:
            _record(state, finding, node, ref)
        return None
    if checker.failed_inventory(ref) is None and _sphinx_silences(app, env, node, contnode):
        return None
    _record(state, checker.explain(ref), node, ref)
    # The text, as Sphinx renders an unresolved reference; returning it keeps Sphinx
    # (and the standard domain, for :ref:) from repeating the warning in other words.
    return contnode


class ExternalReferenceCheck(SphinxPostTransform):
    """Explain ``:external:`` references before intersphinx's resolver replaces them.

    Intersphinx resolves these in its own post-transform, never through
    ``missing-reference``; this one runs just before it.
    """

    default_priority = ReferencesResolver.default_priority - 2

    def run(self, **kwargs: Any) -> None:
        state = _STATE.get(self.env)
        if state is None:
            return
        for node in _external_references(self.document):
            contnode = cast("nodes.TextElement", node[0].deepcopy())
            inv_name = node["inventory"]
            if inv_name is not None and inv_name in getattr(
                self.env, "intersphinx_named_inventory", {}
            ):
                found = resolve_reference_in_inventory(self.env, inv_name, node, contnode)
            else:
                found = resolve_reference_any_inventory(self.env, False, node, contnode)
            ref = _reference(state, node, self.env)
            if found is not None:
                finding = state.checker.gone_from_installed(ref)
                if finding is not None:
                    _record(state, finding, node, ref)
                continue
            _record(state, state.checker.explain(ref), node, ref)
            node.replace_self(contnode)


def _external_references(document: nodes.document) -> list[pending_xref]:
    """The ``:external:`` references of *document*, in document order.

    Every page is walked once more here, for what most pages have none of: a loop
    over the children lists takes 60 % of the time of ``document.findall()``'s
    nested generators.
    """
    found: list[pending_xref] = []
    stack: list[nodes.Node] = [document]
    pop, extend, element = stack.pop, stack.extend, nodes.Element
    while stack:
        node = pop()
        if isinstance(node, element):
            if isinstance(node, pending_xref) and "intersphinx" in node.attributes:
                found.append(node)
            extend(node.children[::-1])
    return found


def on_doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    state = _STATE.get(app.env)
    if state is not None:
        state.written.add(docname)


def on_build_finished(app: Sphinx, exception: BaseException | None) -> None:
    state = _STATE.pop(app.env, None)
    if state is None or exception is not None:
        return
    baseline = state.settings.baseline
    findings = merge_state(
        state_path=Path(app.doctreedir) / STATE_NAME,
        written=state.written,
        current=state.findings,
        all_docs=app.env.found_docs,
    )
    summarise_unavailable(findings, failed=state.checker.failed, baseline=baseline)
    if baseline is not None:
        warn_stale(baseline, findings)
    from sphinxext.xref_check._report import write_report

    write_report(Path(app.outdir) / REPORT_NAME, findings, baseline=baseline)
