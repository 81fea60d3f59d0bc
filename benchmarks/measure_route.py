"""The spec_path route of a launch, traced (docs/architecture.md, "Measured"; not a timing benchmark):
    python benchmarks/measure_route.py run|dry SPEC STORAGE   (PYTHONPATH picks the code measured)
Every call site that crosses into another file of the package, taken once (as reading the code once would), at most MAXD file-crossings
below launch(); prints stays / rooms / returns / climbs and the route."""
import os, sys, json
from pathlib import Path
MAXD = int(os.environ.get("WALK_DEPTH", "2"))
import rewardsweep
PKG = str(Path(rewardsweep.__file__).parent) + "/"
LAYER = {"cli": 0, "mmseg": 0, "sweep": 1, "analysis": 2, "runners": 3, "config": 4, "reward": 5, "checks": 6,
         "formatting": 7}
def room(fn):
    return fn[len(PKG):] if fn.startswith(PKG) else None
def layer(r):
    return LAYER.get(r.split("/")[0].removesuffix(".py"), 8)
seq, seen_sites, stack = [], set(), []   # stack: (room, crossings, recorded)
state = {"on": False}
def prof(frame, event, arg):
    if event not in ("call", "return"):
        return
    r = room(frame.f_code.co_filename)
    if r is None:
        return
    if event == "call":
        if not state["on"]:
            if frame.f_code.co_name == "launch" and r == "sweep/launch.py":
                state["on"] = True
                stack.append((r, 0, True)); seq.append(r)
            return
        parent = stack[-1] if stack else (r, 0, False)
        crossing = r != parent[0]
        depth = parent[1] + (1 if crossing else 0)
        rec = False
        if crossing and depth <= MAXD:
            caller = frame.f_back
            site = (caller.f_code.co_filename, caller.f_lineno, r) if caller else None
            if site not in seen_sites:
                seen_sites.add(site); seq.append(r); rec = True
        stack.append((r, depth, rec))
    else:
        if not state["on"] or not stack:
            return
        me = stack.pop()
        if me[2] and stack:
            seq.append(stack[-1][0])
        if not stack:
            state["on"] = False
def summarise():
    s = [x for i, x in enumerate(seq) if i == 0 or x != seq[i - 1]]
    left, returns, climbs = set(), 0, 0
    for i, x in enumerate(s):
        if i:
            left.add(s[i - 1])
        if x in left:
            returns += 1
            if layer(x) < layer(s[i - 1]):
                climbs += 1
    return {"stays": len(s), "rooms": len(set(s)), "returns": returns, "climbs": climbs}, s
from rewardsweep.sweep.launch import launch
kind, spec, storage = sys.argv[1], sys.argv[2], sys.argv[3]
sys.setprofile(prof)
try:
    if kind == "dry":
        launch(spec, storage=storage, dry_run=True)
    else:
        launch(spec, storage=storage, wandb_mode="offline", address="local")
finally:
    sys.setprofile(None)
counts, route = summarise()
print(json.dumps(counts))
print(" > ".join(route))
