"""The profile walk, compiled: per element node of a profile (with the profile's source), a closure
that does only what can apply there, made on first use and kept by the validator.

What each visit used to re-derive from the node (memo or not, which checks, which children can
be skipped, whether a child's value goes straight to its checks, cardinality bounds, slicing) is
decided once; a node with nothing to check below it compiles to None and is not visited at all.
The problems, their order and where the walk stops on a malformed resource are those of the
interpreted walk it replaces (tests/test_fhir_gate_compiled.py compares the two).

Signatures: value(run, v, vloc, res, key) checks one value at `vloc` (`key` its JSON name);
element(run, obj, loc, res) one child element of `obj` (counted, sliced, each value checked);
one(run, raw, loc, res) the single value of a child that is neither counted nor sliced.
"""

from __future__ import annotations

import orjson

from gateway.conformance.fhir.fhirpath import CHOICE_TYPES
from gateway.model.problem import Severity

_E = Severity.error
CLEAN_MAX = 4096  # clean answers remembered per validator (then forgotten all at once)
CLEAN_BYTES = 2048  # of values at most this long (JSON): the memory stays bounded


class Plans:
    """The compiled walk of one validator's rule set; closures keyed by (node, source)."""

    def __init__(self, validator):
        self.validator = validator
        self._values: dict[tuple[int, str], object] = {}
        self._elements: dict[tuple[int, str], object] = {}
        self._ones: dict[tuple[int, str], object] = {}

    def value(self, node: dict, src: str):
        return self._get(self._values, self._compile_value, node, src)

    def element(self, node: dict, src: str):
        return self._get(self._elements, self._compile_element, node, src)

    def one(self, node: dict, src: str):
        return self._get(self._ones, self._compile_one, node, src)

    @staticmethod
    def _get(made: dict, make, node: dict, src: str):
        """The closure of (node, src) in `made`, made by `make` on first use."""
        key = (id(node), src)
        try:
            return made[key]
        except KeyError:
            fn = made[key] = make(node, src)
            return fn

    # --- a value ------------------------------------------------------------------------------
    def _compile_value(self, node: dict, src: str):
        validator = self.validator
        notes = node["_pure"]
        checks = validator._compile_checks(node, src) if node["_checks"] else None
        profiles = tuple(node["profiles"]) if node["_profiles"] else ()
        # children: (name, _name or None, one, element closure or None, suffix), `one` being False
        # when not single, None when its single value needs nothing, else what _compile_one makes:
        # the value's own closure when it is not an extension (called here with the value's location,
        # `suffix` added), else _compile_one's closure itself (suffix None)
        kids = []
        for name, under, child, single in node["_kidspecs"]:
            element = self.element(child, src)
            one = self.one(child, src) if single else False
            if element is None and not one:
                continue  # nothing to check under it, whatever its values
            suffix = None
            if one and not child["_ext"]:
                one, suffix = self.value(child, src), f".{name}[0]" if child["list"] else f".{name}"
            kids.append((name, under, one, element, suffix))
        kids = tuple(kids)
        if notes is None and not profiles and not kids:
            return checks  # (None: nothing to do on this node)
        rules_profiles = validator.rules.profiles
        apply = validator._apply

        def walk(run, v, vloc, res, key=None):
            if type(v) is not dict:
                return
            for canonical in profiles:
                profile = rules_profiles.get(canonical)
                if profile is not None:
                    apply(run, v, profile, vloc, res)
            for name, under, one, element, suffix in kids:
                raw = v.get(name)
                if raw is None:
                    if under is not None and under not in v:
                        continue  # absent and nothing requires it
                elif one is not False and (type(raw) is not list or len(raw) == 1):
                    if one is not None:
                        if suffix is None:
                            one(run, raw, vloc, res)
                        else:  # (what _compile_one's closure does)
                            if type(raw) is list:
                                raw = raw[0]
                            one(run, raw, vloc + suffix, res, name)
                    continue
                if element is not None:
                    element(run, v, vloc, res)

        if notes is None:
            if checks is None:
                return walk  # (a value that is not an object: nothing to do)

            def value(run, v, vloc, res, key):
                checks(run, v, vloc, res, key)
                if type(v) is dict:
                    walk(run, v, vloc, res)
            return value

        clean = validator._clean
        dumps = orjson.dumps
        node_id = id(node)
        nested = bool(profiles or kids)

        def value(run, v, vloc, res, key):
            # the answer depends on the value alone: a clean one is remembered
            memo = None
            try:
                text = v if type(v) is str else dumps(v)
            except TypeError:  # not serialisable (an integer beyond 64 bits…): walked every time
                text = None
            if text is not None and len(text) <= CLEAN_BYTES:  # large values (attachments…) not kept
                memo = (node_id, key, text)
                if memo in clean and notes <= run.notes:  # its notes already given in this run
                    if notes and run.rec is not None:
                        run.rec.notes |= notes
                    return
                tried = run.tried
            if checks is not None:
                checks(run, v, vloc, res, key)
            if nested and type(v) is dict:
                walk(run, v, vloc, res)
            if memo is not None and run.tried == tried:
                if len(clean) >= CLEAN_MAX:
                    clean.clear()
                clean.add(memo)

        return value

    # --- the single value of a child ------------------------------------------------------------
    def _compile_one(self, node: dict, src: str):
        value = self.value(node, src)
        ext = node["_ext"]
        if value is None and not ext:
            return None
        extension = self.validator._extension
        name = node["name"]
        suffix = f".{name}[0]" if node["list"] else f".{name}"

        if not ext:
            def one(run, raw, loc, res):
                if type(raw) is list:
                    raw = raw[0]
                value(run, raw, loc + suffix, res, name)
            return one

        def one(run, raw, loc, res):
            if type(raw) is list:
                raw = raw[0]
            vloc = loc + suffix
            if value is not None:
                value(run, raw, vloc, res, name)
            if isinstance(raw, dict):
                extension(run, raw, vloc, res)

        return one

    # --- a child element: counted, sliced, each value checked -----------------------------------
    def _compile_element(self, node: dict, src: str):
        validator = self.validator
        value = self.value(node, src)
        is_ext, many = node["_ext"], node["list"]
        mn, mx, slices = node["_bounds"]
        if value is None and not is_ext and not mn and mx is None and not slices:
            return None  # values neither counted, sliced nor checked
        name, prefix, needed, single = node["name"], node["_prefix"], node["_needed"], node["_single"]
        under = node.get("_under")
        one = self.one(node, src) if prefix is None and single else None
        sliced = "slice" in node
        ident = node["id"]
        extension, slice_counts = validator._extension, validator._slice_counts
        assign = validator._compile_assign(node, src) if slices else None
        slice_values = {id(s): self.value(s, src) for s in slices or ()}  # each slice's own checks
        # the keys of a choice (`value` + each type name): choice_values' test, one lookup a key
        keys = frozenset(prefix + t for t in CHOICE_TYPES) if prefix is not None else frozenset()

        def element(run, obj, loc, res):
            if prefix is None:
                raw = obj.get(name)
                if raw is None:
                    if under in obj:
                        values = [(under, obj[under])]
                    elif needed:
                        values = []
                    else:
                        return  # absent and nothing requires it: nothing to check
                elif type(raw) is list and (len(raw) != 1 or not single):
                    values = [(name, v) for v in raw]
                elif single:  # one value, nothing to count nor slice: straight to its checks
                    if one is not None:
                        one(run, raw, loc, res)
                    return
                else:
                    values = [(name, raw)]
                step = name
            else:
                values = []
                for k, v in obj.items():  # (a loop: no comprehension's call)
                    if k in keys:
                        values.append((k, v))
                if not values and not needed:
                    return
                step = values[0][0] if values else prefix
            count = len(values)
            assigned = None
            if (mn and count < mn) or (mx is not None and count > mx) or slices:
                here = f"{loc}.{step}"
                if mn and count < mn and not sliced:
                    run.add(here, "cardinality-min",
                            f"élément obligatoire absent : {ident} ({count} présent(s), minimum {mn})",
                            f"required element missing: {ident} ({count} present, minimum {mn})", _E, src)
                if mx is not None and count > mx and not sliced:
                    run.add(here, "cardinality-max",
                            f"trop d'occurrences : {ident} ({count}, maximum {mx})",
                            f"too many occurrences: {ident} ({count}, maximum {mx})", _E, src)
                if not values:
                    if slices:
                        slice_counts(run, node, [], here, src)
                    return
                if slices:
                    assigned = assign(run, values, loc, here)
            elif not count:
                return
            for i, (key, v) in enumerate(values):
                if key.startswith("_"):
                    continue  # a primitive carrying only extensions: counted, nothing more to check
                vloc = f"{loc}.{key}[{i}]" if many else f"{loc}.{key}"
                if value is not None:
                    value(run, v, vloc, res, key)
                chosen = assigned[i] if assigned else None
                if chosen is not None:
                    checked = slice_values[id(chosen)]
                    if checked is not None:
                        checked(run, v, vloc, res, key)
                if is_ext and isinstance(v, dict):
                    extension(run, v, vloc, res)

        return element
