"""What can be checked of the collection's PowerShell without running it: syntax, Windows PowerShell 5.1, and a
host script against its contract.

No PowerShell runs on our machines, and the lab answers with Python twins, so this is the one check of the scripts'
own text. tree-sitter-powershell parses a script; the checks walk the syntax tree. The grammar follows PowerShell 7:
what it accepts, 5.1 may not (``&&``, ``ForEach-Object -Parallel``, ``ConvertFrom-Json -AsHashtable``), hence the
5.1 gate.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

import tree_sitter
import tree_sitter_powershell

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))

# Wrappers the grammar puts around every expression; walking through them finds the statement underneath.
WRAPPERS = {
    "pipeline",
    "pipeline_chain",
    "logical_expression",
    "bitwise_expression",
    "comparison_expression",
    "additive_expression",
    "multiplicative_expression",
    "format_expression",
    "range_expression",
    "array_literal_expression",
    "unary_expression",
    "logical_argument_expression",
    "bitwise_argument_expression",
    "comparison_argument_expression",
    "additive_argument_expression",
    "multiplicative_argument_expression",
    "format_argument_expression",
    "range_argument_expression",
    "argument_expression",
}
ALIASES = {"%": "foreach-object", "foreach": "foreach-object", "?": "where-object", "where": "where-object"}

# Cmdlets, parameters and variables that came with PowerShell 6 or 7 and that Windows PowerShell 5.1 lacks.
NEWER_COMMANDS = {
    "test-json": "6.1",
    "get-error": "7.0",
    "join-string": "6.2",
    "convertfrom-markdown": "6.1",
    "get-uptime": "6.0",
    "remove-alias": "6.0",
    "remove-service": "6.0",
    "get-pslsubsystem": "7.4",
}
NEWER_PARAMETERS = {
    "foreach-object": {"-parallel": "7.0", "-throttlelimit": "7.0", "-asjob": "7.0"},
    "convertfrom-json": {"-ashashtable": "6.0", "-depth": "6.2", "-noenumerate": "7.0"},
    "convertto-json": {"-asarray": "6.2", "-escapehandling": "6.2"},
    "get-content": {"-asbytestream": "6.0"},
    "set-content": {"-asbytestream": "6.0"},
    "select-string": {"-raw": "7.0", "-noemphasis": "7.0"},
    "invoke-webrequest": {"-skipcertificatecheck": "6.0", "-authentication": "6.0"},
    "invoke-restmethod": {"-skipcertificatecheck": "6.0", "-authentication": "6.0"},
    "test-connection": {"-targetname": "6.0", "-tcpport": "6.0"},
    "get-childitem": {"-followsymlink": "6.0"},
}
NEWER_VARIABLES = {"$iswindows": "6.0", "$islinux": "6.0", "$ismacos": "6.0", "$iscoreclr": "6.0", "$psstyle": "7.2"}
# Text the grammar reports as an error, or accepts, although only PowerShell 7 has it; matched outside strings.
NEWER_SYNTAX = (
    (re.compile(r"\?\?=?"), "the null-coalescing operator ?? (PowerShell 7.0)"),
    (re.compile(r"\?\.|\?\["), "the null-conditional operators ?. and ?[] (PowerShell 7.1)"),
    (re.compile(r"\s\?\s[^:]*\s:\s"), "the ternary operator ? : (PowerShell 7.0)"),
    (re.compile(r"^\s*clean\s*\{", re.MULTILINE), "the clean block (PowerShell 7.3)"),
)
UTF8_NO_BOM = re.compile(r"-Encoding\s+['\"]?utf8NoBOM", re.IGNORECASE)

# Statement-level commands that write nothing to the output stream (unless -PassThru): a script may call them bare.
SILENT_VERBS = {"set", "remove", "enable", "disable", "restart", "start", "stop", "clear", "register", "unregister"}
SILENT_COMMANDS = {"write-verbose", "write-debug", "write-warning", "out-null", "start-sleep"}
# Methods whose return value would leak into the output when called as a statement (ArrayList.Add returns the index).
LEAKING_METHODS = {"add", "remove", "addrange"}


def parse(text: str) -> tree_sitter.Tree:
    return PARSER.parse(text.encode("utf-8"))


def walk(node: tree_sitter.Node) -> t.Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def unwrap(node: tree_sitter.Node) -> tree_sitter.Node:
    """The expression under the grammar's single-child wrappers."""
    while node.type in WRAPPERS and node.named_child_count == 1:
        child = node.named_children[0]
        assert child is not None
        node = child
    return node


def text_of(node: tree_sitter.Node | None) -> str:
    return node.text.decode("utf-8") if node is not None and node.text is not None else ""


def line_of(node: tree_sitter.Node) -> int:
    return node.start_point[0] + 1


def first_error(node: tree_sitter.Node) -> tree_sitter.Node | None:
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        found = first_error(child)
        if found is not None:
            return found
    return None


def syntax_error(text: str) -> str | None:
    error = first_error(parse(text).root_node)
    return None if error is None else f"line {line_of(error)}: syntax error near {text_of(error)[:40]!r}"


def _code_outside_strings_and_comments(tree: tree_sitter.Tree) -> str:
    """The script with string literals and comments blanked out (same length, same lines)."""
    text = bytearray(tree.root_node.text or b"")
    for node in walk(tree.root_node):
        if node.type in ("string_literal", "comment"):
            for index in range(node.start_byte, node.end_byte):
                if text[index] not in b"\r\n":
                    text[index] = ord(" ")
    return text.decode("utf-8")


def command_name(node: tree_sitter.Node) -> str:
    name = text_of(node.child_by_field_name("command_name") or _child(node, "command_name")).lower()
    return ALIASES.get(name, name)


def _child(node: tree_sitter.Node, kind: str) -> tree_sitter.Node | None:
    return next((child for child in node.children if child.type == kind), None)


def command_parameters(node: tree_sitter.Node) -> list[str]:
    elements = _child(node, "command_elements")
    if elements is None:
        return []
    return [text_of(child).lower().rstrip(":") for child in elements.children if child.type == "command_parameter"]


def powershell_7_only(text: str) -> list[str]:
    """Everything in ``text`` that Windows PowerShell 5.1 does not have, one message per finding."""
    tree = parse(text)
    found = []
    for node in walk(tree.root_node):
        if node.type == "pipeline_chain_tail":
            found.append(f"line {line_of(node)}: the pipeline chain operators && and || (PowerShell 7.0)")
        elif node.type == "command":
            name = command_name(node)
            if name in NEWER_COMMANDS:
                found.append(f"line {line_of(node)}: {name} (PowerShell {NEWER_COMMANDS[name]})")
            for parameter in command_parameters(node):
                since = NEWER_PARAMETERS.get(name, {}).get(parameter)
                if since:
                    found.append(f"line {line_of(node)}: {name} {parameter} (PowerShell {since})")
        elif node.type == "variable" and text_of(node).lower() in NEWER_VARIABLES:
            variable = text_of(node).lower()
            found.append(f"line {line_of(node)}: {variable} (PowerShell {NEWER_VARIABLES[variable]})")
    code = _code_outside_strings_and_comments(tree)
    for pattern, what in NEWER_SYNTAX:
        for match in pattern.finditer(code):
            found.append(f"line {code.count(chr(10), 0, match.start()) + 1}: {what}")
    for match in UTF8_NO_BOM.finditer(code):
        found.append(f"line {code.count(chr(10), 0, match.start()) + 1}: -Encoding utf8NoBOM (PowerShell 6.0)")
    return sorted(set(found), key=lambda item: int(item.split(":")[0].split()[1]))


# --- a host script against its contract ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptFacts:
    """What a host script's text shows: the parameters it reads, the result keys it returns, what it writes."""

    params_read: set[str]
    params_misread: list[str]  # uses of $params other than $params.NAME
    result_variable: str | None
    result_keys: set[str]
    registry_kinds: list[tuple[int, str | None]]  # (line, RegistryValueKind) of every SetValue; None: no kind given
    write_apis: dict[str, list[int]]  # area -> lines of calls that write to it
    output_leaks: list[str]


# Calls that change a host, by the area of a contract's "# writes AREA:" line that must declare them. Modules that
# add areas add their write calls here, so that an undeclared write in a script fails the contract test.
WRITE_METHODS = {
    "setvalue": "registry",
    "deletevalue": "registry",
    "createsubkey": "registry",
    "deletesubkey": "registry",
    "deletesubkeytree": "registry",
    # Active Directory: an entry's changes, a forced replication.
    "commitchanges": "directory",
    "syncreplicafromallservers": "directory",
}
# Methods that write only on an object of one .NET type (X509Store.Add does, List.Add does not), by the type's name
# as the script constructs it; the receiver is a variable the script assigned from that type's constructor.
WRITE_METHODS_OF_TYPE = {
    "x509store": {
        "add": "certificates",
        "addrange": "certificates",
        "remove": "certificates",
        "removerange": "certificates",
    },
}
WRITE_COMMANDS = {
    "disable-netfirewallrule": "firewall",
    "enable-netfirewallrule": "firewall",
    "new-netfirewallrule": "firewall",
    "remove-netfirewallrule": "firewall",
    "set-netfirewallrule": "firewall",
    "set-receiveconnector": "exchange",
    "set-itemproperty": "registry",
    "new-itemproperty": "registry",
    "remove-itemproperty": "registry",
    # Services, and the clock (w32tm /resync sets it; w32tm is only ever run for its effect).
    "restart-service": "service",
    "set-service": "service",
    "start-service": "service",
    "stop-service": "service",
    "w32tm": "clock",
    "w32tm.exe": "clock",
}


def _is_params(node: tree_sitter.Node) -> bool:
    return node.type == "variable" and text_of(node).lower() == "$params"


def _member(node: tree_sitter.Node) -> str:
    return text_of(_child(node, "member_name")).lower()


def _statements(tree: tree_sitter.Tree) -> list[tree_sitter.Node]:
    statements = _child(tree.root_node, "statement_list")
    return [unwrap(node) for node in (statements.named_children if statements is not None else [])]


def _result_variable(statements: list[tree_sitter.Node]) -> str | None:
    if not statements:
        return None
    last = statements[-1]
    if last.type == "flow_control_statement" and text_of(last).lower().startswith("return"):
        values = [unwrap(child) for child in last.named_children]
        last = values[-1] if values else last
    return text_of(last).lower() if last.type == "variable" else None


def _assigned_to(node: tree_sitter.Node) -> tuple[tree_sitter.Node, tree_sitter.Node] | None:
    """(target, value) of an assignment."""
    if node.type != "assignment_expression":
        return None
    target = _child(node, "left_assignment_expression")
    values = [child for child in node.named_children if child.type not in ("left_assignment_expression",)]
    values = [child for child in values if child.type != "assignement_operator"]
    if target is None or not values:
        return None
    return unwrap(target.named_children[0]) if target.named_children else target, unwrap(values[-1])


def _hash_keys(node: tree_sitter.Node) -> set[str]:
    """The keys of a hash literal (through a cast such as [ordered]), or empty when ``node`` is not one."""
    while node.type in ("expression_with_unary_operator", "cast_expression") and node.named_children:
        node = unwrap(node.named_children[-1])
    if node.type != "hash_literal_expression":
        return set()
    body = _child(node, "hash_literal_body")
    keys = set()
    for entry in body.named_children if body is not None else []:
        key = _child(entry, "key_expression")
        keys.add(text_of(key).strip("'\"").lower())
    return keys


def _typed_variables(tree: tree_sitter.Tree) -> dict[str, str]:
    """Variables assigned from the constructor of a type in WRITE_METHODS_OF_TYPE: ``$v = [...X509Store]::new(...)``
    or ``New-Object ...X509Store``, by lower-case name."""
    typed = {}
    for node in walk(tree.root_node):
        assignment = _assigned_to(node)
        if assignment is None or assignment[0].type != "variable":
            continue
        value = text_of(assignment[1]).lower()
        for kind in WRITE_METHODS_OF_TYPE:
            if re.match(rf"\[([a-z0-9_.]+\.)?{kind}\]::new\(", value) or re.match(
                rf"new-object\s+(-typename\s+)?['\"]?([a-z0-9_.]+\.)?{kind}\b", value
            ):
                typed[text_of(assignment[0]).lower()] = kind
    return typed


def script_facts(text: str) -> ScriptFacts:
    tree = parse(text)
    statements = _statements(tree)
    result = _result_variable(statements)
    typed = _typed_variables(tree)
    params_read: set[str] = set()
    misread: list[str] = []
    keys: set[str] = set()
    kinds: list[tuple[int, str | None]] = []
    writes: dict[str, list[int]] = {}
    for node in walk(tree.root_node):
        if _is_params(node):
            parent = node.parent
            if parent is not None and parent.type == "member_access" and parent.children[0] == node:
                params_read.add(_member(parent))
            elif parent is not None and parent.type not in ("parameter_list", "script_parameter"):
                misread.append(f"line {line_of(node)}: {text_of(parent)[:60]}")
        assignment = _assigned_to(node)
        if assignment is not None and result is not None:
            target, value = assignment
            if target.type == "variable" and text_of(target).lower() == result:
                keys |= _hash_keys(value)
            elif target.type == "member_access" and text_of(target.children[0]).lower() == result:
                keys.add(_member(target))
            elif target.type == "element_access" and text_of(target.children[0]).lower() == result:
                keys.add(text_of(target.children[2]).strip("'\"").lower())
        if node.type == "invokation_expression":
            method = _member(node)
            if method in WRITE_METHODS:
                writes.setdefault(WRITE_METHODS[method], []).append(line_of(node))
            receiver = text_of(node.children[0]).lower() if node.children else ""
            area = WRITE_METHODS_OF_TYPE.get(typed.get(receiver, ""), {}).get(method)
            if area is not None:
                writes.setdefault(area, []).append(line_of(node))
            if method == "setvalue":
                kinds.append((line_of(node), _registry_kind(node)))
        if node.type == "command" and command_name(node) in WRITE_COMMANDS:
            writes.setdefault(WRITE_COMMANDS[command_name(node)], []).append(line_of(node))
    return ScriptFacts(params_read, misread, result, keys, kinds, writes, _output_leaks(statements))


def _registry_kind(node: tree_sitter.Node) -> str | None:
    arguments = _child(node, "argument_list")
    listed = _child(arguments, "argument_expression_list") if arguments is not None else None
    values = [unwrap(child) for child in (listed.named_children if listed is not None else [])]
    if len(values) < 3:
        return None
    kind = values[2]
    if kind.type == "member_access" and "registryvaluekind" in text_of(kind.children[0]).lower():
        return text_of(_child(kind, "member_name"))
    return None


def _output_leaks(statements: list[tree_sitter.Node]) -> list[str]:
    """Statements that would write to the output stream besides the result, which the bootstrap refuses."""
    leaks = []
    for node in _all_statements(statements):
        if node.type == "invokation_expression" and _member(node) in LEAKING_METHODS:
            leaks.append(f"line {line_of(node)}: {text_of(node)[:60]} (assign it to $null)")
        elif node.type in ("pipeline", "pipeline_chain", "command"):
            commands = [child for child in walk(node) if child.type == "command"]
            last = command_name(commands[-1]) if commands else ""
            first = commands[0] if commands else None
            if first is None or last == "out-null":
                continue
            name = command_name(first)
            silent = name in SILENT_COMMANDS or name.split("-")[0] in SILENT_VERBS
            if not silent or "-passthru" in command_parameters(first):
                leaks.append(f"line {line_of(node)}: {text_of(node)[:60]} (assign it or pipe it to Out-Null)")
    return leaks


def _all_statements(statements: list[tree_sitter.Node]) -> t.Iterator[tree_sitter.Node]:
    """Every statement whose value reaches the script's output: top level, and inside if/else, try/finally, loops."""
    for node in statements:
        yield node
        for child in walk(node):
            if child is node or child.type != "statement_list":
                continue
            parent = child.parent
            # A script block handed to a command or a method (ForEach-Object { }, [regex]::Replace) has an output of
            # its own; its statements are that block's business. So do @(...) and $(...): their statements make the
            # expression's value, which the enclosing statement assigns or leaks.
            inside_expression = False
            while parent is not None and parent is not node:
                if parent.type in (
                    "script_block_expression",
                    "function_statement",
                    "array_expression",
                    "sub_expression",
                ):
                    inside_expression = True
                    break
                parent = parent.parent
            if not inside_expression:
                yield from (unwrap(item) for item in child.named_children)


def contract_problems(text: str, contract: t.Any) -> list[str]:
    """How a host script's text departs from its declared contract (a Contract of the seam); empty when it keeps it."""
    facts = script_facts(text)
    problems = []
    declared_inputs = {name.lower() for name in contract.inputs}
    declared_outputs = {name.lower() for name in contract.outputs}
    for name in sorted(facts.params_read - declared_inputs):
        problems.append(f"reads $params.{name}, which the contract does not declare as input")
    for name in sorted(declared_inputs - facts.params_read):
        problems.append(f"declares input {name} but never reads $params.{name}")
    problems += [f"reads $params other than as $params.NAME: {use}" for use in facts.params_misread]
    if facts.result_variable is None:
        problems.append("the last statement must be the result variable (or return it)")
    else:
        for name in sorted(facts.result_keys - declared_outputs):
            problems.append(f"returns {name}, which the contract does not declare as output")
        for name in sorted(declared_outputs - facts.result_keys):
            problems.append(f"declares output {name} but the result never gets it")
    declared_kinds = {spec.rsplit(" ", 1)[-1] for spec in contract.writes.get("registry", ())}
    for line, kind in facts.registry_kinds:
        if kind is None:
            problems.append(f"line {line}: SetValue without an explicit [Microsoft.Win32.RegistryValueKind]")
        elif kind not in declared_kinds:
            problems.append(
                f"line {line}: writes a registry value of kind {kind}; the contract declares {sorted(declared_kinds)}"
            )
    for area, lines in sorted(facts.write_apis.items()):
        if area not in contract.writes:
            problems.append(f"lines {lines}: write to {area}, which the contract does not declare")
    for area in sorted(set(contract.writes) - set(facts.write_apis)):
        problems.append(f"declares writes to {area}, but no call in the script writes there")
    return problems
