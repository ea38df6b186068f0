"""DynamoDB expressions parsed once per expression string, and validated without the work that cannot change.

moto parses an UpdateExpression twice per UpdateItem (the handler, to check the names and values it uses; the
backend, to apply it) and lexes a ConditionExpression twice (the handler's check, the backend's evaluation).
Its validator deep-copies the parsed tree and walks the copy ten times; the first three walks check the tree
alone (at most one SET, REMOVE, ADD and DELETE clause; no path set twice or overlapping another; no key
attribute updated), and the first of them looks at every clause below every node, so its cost grows with the
square of the number of actions. The ledger's transitions set a dozen attributes in one expression, and a
py-spy profile of `benchmarks.dynamodb_bench` put parsing and validation at over half of UpdateItem's and
TransactWriteItems' time in the sandbox.

With a Sandbox running:
- an UpdateExpression's parsed tree is kept per expression string; moto never changes that tree (the validator
  works on its own copy), so every request with the same string gets the same tree;
- a ConditionExpression's tokens are kept per expression string (names and values are looked up after lexing),
  and its parsed condition per expression, names and values (a write's condition is parsed again by the
  backend after the handler checked it; moto never changes a parsed condition);
- the validator's copy of the tree is made node by node, as deepcopy would make it, without deepcopy's
  general machinery;
- the three checks of the tree alone are run once per expression, names and table key: passed once, they pass
  again, and they change nothing in the tree. Every other step (values, the item's paths, functions, types)
  runs on every request, so every error moto answers is still answered, with the same words;
- moto's walk over the tree looks each node's class up once instead of asking Python's abstract base class
  machinery at every node for every walk.
Without one, moto's own code runs. tests/integration/test_sandbox_dynamodb_speed.py runs both paths on many
expressions, items and errors and compares the answers.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from typing import Any

from sandbox import core

# Expressions kept at most; past that the cache starts again (a stack sends a few dozen distinct ones).
CACHE_LIMIT = 2048

_trees: dict[str, Any] = {}  # UpdateExpression string -> moto's parsed tree (never changed)
_kept: dict[int, Any] = {}  # id of a kept tree -> the tree
_passed: dict[tuple[Any, ...], bool] = {}  # (id of a kept tree, names, table keys) -> its tree checks passed
_tokens: dict[str, tuple[Any, ...]] = {}  # ConditionExpression string -> its lexed tokens
# (ConditionExpression, names, values as JSON) -> (parsed condition, names found, values found)
_conditions: dict[tuple[str, str, str], tuple[Any, list[str], list[str]]] = {}


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
        if cache is _trees:
            _kept.clear()
            _passed.clear()  # keyed by the ids of trees no longer kept
            _can_hold.clear()
    cache[key] = value
    if cache is _trees:
        _kept[id(value)] = value


NODE_STATE = frozenset({"type", "children", "parent"})  # all a parsed node holds
LEAVES = (str, int, bool, type(None))  # what deepcopy gives back as it is


class NotClonable(Exception):
    """The tree holds something the node-by-node copy does not reproduce exactly; deepcopy it instead."""


def clone_tree(root: Any, order: list[Any] | None = None) -> Any:
    """A copy of a parsed expression tree equal to copy.deepcopy(root): new nodes with the same `type`, new
    children lists, each node's `parent` the copy of its parent. Raises NotClonable for a tree that is not
    plain parser output (other attributes, a node or list in two places, a parent that is not the node's
    parent, a leaf that is not a str, int, bool or None). `order`, if given, gets the new nodes in
    pre-order."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    seen: set[int] = set()

    def node_copy(node: Any, parent: Any, parent_copy: Any) -> Any:
        state = node.__dict__
        if id(node) in seen or state.keys() != NODE_STATE or state["parent"] is not parent:
            raise NotClonable(type(node).__name__)
        seen.add(id(node))
        new = object.__new__(type(node))
        if order is not None:
            order.append(new)
        children = state["children"]
        copied = None
        if children is not None:
            if type(children) is not list or id(children) in seen:
                raise NotClonable("children")
            seen.add(id(children))
            copied = []
            for child in children:
                kind = type(child)
                if kind in LEAVES:
                    copied.append(child)
                elif _is(kind, Node):
                    copied.append(node_copy(child, node, new))
                else:
                    raise NotClonable(kind.__name__)
        new.__dict__.update(type=state["type"], children=copied, parent=parent_copy)
        return new

    return node_copy(root, None, None)


def _validator_deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """moto's validators module's `deepcopy`: parsed trees copied node by node while a sandbox runs."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    if core.active() is not None and isinstance(value, Node) and memo is None:
        order: list[Any] = []
        try:
            copied = clone_tree(value, order)
        except NotClonable:
            pass
        else:
            _last_clone[:] = [(value, copied, order)]
            return copied
    return copy.deepcopy(value, memo)


# (a kept tree, the validator's copy of it, the copy's nodes in pre-order): the last copy made
_last_clone: list[tuple[Any, Any, list[Any]]] = []


def install() -> None:
    """Called once, from sandbox.patches."""
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    from sandbox import dynamodb_fast

    parse_update = UpdateExpressionParser.make.__func__

    def make(cls: Any, expression_str: str) -> Any:
        if core.active() is None or cls is not UpdateExpressionParser or type(expression_str) is not str:
            return parse_update(cls, expression_str)
        tree = _trees.get(expression_str)
        if tree is None:
            tree = parse_update(cls, expression_str)  # a refused expression raises every time, as it did
            _remember(_trees, expression_str, tree)
        return tree

    dynamodb_fast.replace(UpdateExpressionParser, "make", classmethod(make))

    lex = ConditionExpressionParser._lex_condition_expression

    def lex_condition_expression(self: Any) -> deque[Any]:
        expression = self.condition_expression
        if core.active() is None or type(expression) is not str:
            return lex(self)
        tokens = _tokens.get(expression)
        if tokens is None:
            tokens = tuple(lex(self))  # namedtuples; nothing downstream changes them
            _remember(_tokens, expression, tokens)
        return deque(tokens)

    dynamodb_fast.replace(ConditionExpressionParser, "_lex_condition_expression", lex_condition_expression)

    parse_condition = ConditionExpressionParser.parse

    def parse_once(self: Any) -> Any:
        expression = self.condition_expression
        if core.active() is None or type(expression) is not str:
            return parse_condition(self)
        try:  # the names and values as given, in their order; a value JSON cannot hold is not kept
            key = (
                expression,
                json.dumps(self.expression_attribute_names),
                json.dumps(self.expression_attribute_values),
            )
        except (TypeError, ValueError):
            return parse_condition(self)
        kept = _conditions.get(key)
        if kept is None:
            condition = parse_condition(self)  # a refused condition raises every time, as it did
            _remember(
                _conditions,
                key,
                (condition, list(self.expr_attr_names_found), list(self.expr_attr_values_found)),
            )
            return condition
        condition, names_found, values_found = kept
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return condition

    dynamodb_fast.replace(ConditionExpressionParser, "parse", parse_once)
    dynamodb_fast.replace(validators, "deepcopy", _validator_deepcopy)

    initialise = UpdateExpressionValidator.__init__
    validate = UpdateExpressionValidator.validate

    def validator_init(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        _last_clone.clear()
        initialise(self, expression, *args, **kwargs)
        self.sandbox_source = expression  # the kept tree, when make() gave it; validate() checks
        if _last_clone and _last_clone[0][0] is expression and _last_clone[0][1] is self.node_to_validate:
            self.sandbox_copied = _last_clone[0][2]  # the copy's nodes in pre-order (walk() prunes by them)
        _last_clone.clear()

    def validate_expression(self: Any) -> Any:
        source = getattr(self, "sandbox_source", None)
        if core.active() is None or source is None or _kept.get(id(source)) is not source:
            return validate(self)
        names = self.expression_attribute_names
        try:
            key = (
                id(source),
                None if names is None else tuple(names.items()),
                tuple(self.table.table_key_attrs),
            )
            hash(key)
        except TypeError:
            return validate(self)
        processors = self.processors
        checks = _leading_tree_checks(processors)
        start = checks if _passed.get(key) else 0
        tree = self.node_to_validate
        below = _below_copy(source, getattr(self, "sandbox_copied", None))
        for index in range(start, len(processors)):
            processor = processors[index]
            if below is not None and walks_as_moto(processor):
                tree = walk(processor, tree, below)
            else:
                tree = processor.traverse(tree)
            if index == checks - 1:
                _remember(_passed, key, True)
        return tree

    dynamodb_fast.replace(UpdateExpressionValidator, "__init__", validator_init)
    dynamodb_fast.replace(UpdateExpressionValidator, "validate", validate_expression)

    traverse = DepthFirstTraverser.traverse

    def traverse_fast(self: Any, node: Any) -> Any:
        if core.active() is None or not walks_as_moto(self):
            return traverse(self, node)
        return walk(self, node)

    dynamodb_fast.replace(DepthFirstTraverser, "traverse", traverse_fast)


def walks_as_moto(processor: Any) -> bool:
    """Whether the processor walks a tree with DepthFirstTraverser's own methods (walk() is those)."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]

    cls = type(processor)
    return (
        cls.traverse_node_recursively is DepthFirstTraverser.traverse_node_recursively
        and cls.nodes_to_be_processed is DepthFirstTraverser.nodes_to_be_processed
        and cls.process is DepthFirstTraverser.process
    )


# id of a kept tree -> for each of its nodes in pre-order, the node classes its subtree can hold while the
# validator works on a copy of it
_can_hold: dict[int, list[frozenset[type]]] = {}


def _below_copy(source: Any, copied: list[Any] | None) -> dict[int, tuple[Any, frozenset[type]]] | None:
    """For the validator's copy of kept tree `source` (its nodes in pre-order): id of each node -> (the node,
    the classes its subtree can hold). None when the copy's nodes are not known."""
    if copied is None:
        return None
    classes = _can_hold.get(id(source))
    if classes is None:
        classes = _remember_classes(source)
    if len(classes) != len(copied):
        return None
    return {id(node): (node, held) for node, held in zip(copied, classes, strict=True)}


def _remember_classes(source: Any) -> list[frozenset[type]]:
    """The node classes each node's subtree holds, and those the validator's steps can put there: a value,
    path, function or arithmetic below can become a DDBTypedValue; a path (or a function of one) a
    NoneExistingPath; every other step keeps a node or puts one from the same subtree in its place."""
    from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
        DDBTypedValue,
        ExpressionAttributeValue,
        Node,
        NoneExistingPath,
        UpdateExpressionFunction,
        UpdateExpressionPath,
        UpdateExpressionValue,
    )

    typed = (ExpressionAttributeValue, UpdateExpressionPath, UpdateExpressionFunction, UpdateExpressionValue)
    missing = (UpdateExpressionPath, UpdateExpressionFunction)
    found: list[frozenset[type]] = []

    def holds(node: Any) -> frozenset[type]:
        place = len(found)
        found.append(frozenset())
        classes = {type(node)}
        for child in node.children or []:
            if _is(type(child), Node):
                classes |= holds(child)
        if any(_is(cls, typed) for cls in classes):
            classes.add(DDBTypedValue)
        if any(_is(cls, missing) for cls in classes):
            classes.add(NoneExistingPath)
        found[place] = frozenset(classes)
        return found[place]

    holds(source)
    if len(_can_hold) >= CACHE_LIMIT:
        _can_hold.clear()
    _can_hold[id(source)] = found
    return found


def _leading_tree_checks(processors: list[Any]) -> int:
    """How many of the validator's first processors check the tree alone (they raise or pass, and change
    nothing): moto's ActionCountValidator, OverlappingPathsValidator and UpdateHashRangeKeyValidator."""
    from moto.dynamodb.parsing.validators import (
        ActionCountValidator,
        OverlappingPathsValidator,
        UpdateHashRangeKeyValidator,
    )

    tree_only = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)
    count = 0
    for processor in processors:
        if type(processor) not in tree_only:
            break
        count += 1
    return count


_subclass: dict[tuple[type, Any], bool] = {}


def _is(cls: type, kinds: Any) -> bool:
    """isinstance by the object's class, remembered: moto's node classes are ABCs, whose isinstance goes
    through Python code on every call."""
    key = (cls, kinds)
    known = _subclass.get(key)
    if known is None:
        known = _subclass[key] = issubclass(cls, kinds)
    return known


NOT_A_NODE = -2  # a leaf value under a node: returned as it is
UNPROCESSED = -1  # a node the processor has no handler for

# (processor class, node class) -> index of the processor's handler for that node class, or one of the two
_plans: dict[tuple[type, type], int] = {}


# (processor class, classes a subtree can hold) -> whether the processor has a handler for any of them
_handles_any: dict[tuple[type, frozenset[type]], bool] = {}


def walk(processor: Any, root: Any, below: dict[int, tuple[Any, frozenset[type]]] | None = None) -> Any:
    """moto's DepthFirstTraverser.traverse_node_recursively over `root`, step for step: children first
    (each announced to pre_processing_of_child), then the node through its handler, the result put in the
    node's place. The processor's map is read once per walk and each node class's handler looked up once
    per processor class, instead of building the map and asking isinstance of each class in it at every
    node; a leaf value is not visited (moto's visit returns it untouched). With `below` (_below_copy), a
    subtree that can hold no node the processor handles is not visited either: moto's visit of it calls no
    handler and changes nothing (the calls to pre_processing_of_child inside it change nothing either: the
    one processor that has it acts on action nodes, whose paths it handles, so their subtrees are visited)."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]

    processor_map = processor._processing_map()
    kinds = list(processor_map)
    handlers = list(processor_map.values())
    pre = None
    if type(processor).pre_processing_of_child is not DepthFirstTraverser.pre_processing_of_child:
        pre = processor.pre_processing_of_child
    plans: dict[type, int] = {}

    def plan_of(cls: type) -> int:
        key = (type(processor), cls)
        plan = _plans.get(key)
        if plan is None:
            if not issubclass(cls, Node):
                plan = NOT_A_NODE
            else:
                plan = next((i for i, kind in enumerate(kinds) if issubclass(cls, kind)), UNPROCESSED)
            _plans[key] = plan
        plans[cls] = plan
        return plan

    def handles_any(classes: frozenset[type]) -> bool:
        key = (type(processor), classes)
        known = _handles_any.get(key)
        if known is None:
            known = _handles_any[key] = any(issubclass(cls, kind) for cls in classes for kind in kinds)
        return known

    def visit(node: Any, child_id: int, plan: int) -> Any:
        parent_node = node.parent
        children = node.children
        if children is not None:
            for i, child_node in enumerate(children):
                if pre is not None:
                    pre(node, i)
                child_plan = plans.get(type(child_node))
                if child_plan is None:
                    child_plan = plan_of(type(child_node))
                if child_plan == NOT_A_NODE:
                    continue
                if below is not None:
                    known = below.get(id(child_node))
                    if known is not None and known[0] is child_node and not handles_any(known[1]):
                        continue
                visit(child_node, i, child_plan)
        if plan != UNPROCESSED:
            node = handlers[plan](node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    root_plan = plan_of(type(root))
    return root if root_plan == NOT_A_NODE else visit(root, -1, root_plan)
