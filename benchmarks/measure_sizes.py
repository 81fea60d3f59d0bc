"""Largest functions and modules of a package folder (AST line counts): `python benchmarks/measure_sizes.py rewardsweep [N]`
(docs/architecture.md, "Measured"). Not a timing benchmark."""
import ast, sys, pathlib
root = pathlib.Path(sys.argv[1])
funcs = []
mods = []
for p in root.rglob("*.py"):
    src = p.read_text()
    mods.append((len(src.splitlines()), str(p.relative_to(root))))
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            args = len(node.args.args) + len(node.args.kwonlyargs) + len(node.args.posonlyargs)
            funcs.append((n, args, f"{p.relative_to(root)}:{node.lineno} {node.name}"))
funcs.sort(reverse=True); mods.sort(reverse=True)
print("functions > 50 lines:", sum(1 for f in funcs if f[0] > 50), "of", len(funcs))
for f in funcs[:int(sys.argv[2]) if len(sys.argv) > 2 else 8]: print("  %4d lines %2d params  %s" % f)
print("largest modules:")
for m in mods[:8]: print("  %4d %s" % m)
