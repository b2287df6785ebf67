"""The report of benchmarks/time_to_accuracy.py: each side's finals, the
minutes each needed to reach the other's final AP, the plot, and sides
brought in from an earlier report (--against).

A side brought in keeps its name unless a side of this run has it; then it
is named "<side> @ <date>" (the earlier mrcnn in float32 beside this run's
mrcnn in "auto" precision, say). Runs are compared only when they trained
and scored the same way: the same input size, backbone, training folder,
split and validation image count, and budget; otherwise the script stops
and names what differs.

    python benchmarks/race_report.py auto.json --against float32.json \
        --out benchmarks/out      # reports written earlier, merged
"""
import json

# What two runs must share for their curves to be compared.
COMPARABLE = ("size", "backbone", "train_dir", "val_dir", "split",
              "train_images", "val_images", "budget_minutes", "threads")


def minutes_to_reach(curve, target):
    """The first evaluation time (minutes) whose mask AP is >= target, or
    None when the curve never gets there."""
    for point in curve:
        if point["mask_ap"] >= target:
            return point["minutes"]
    return None


def summarize(curves):
    """Per side: its final APs, steps, seconds a step and the minutes it
    needed to reach the other side's final mask AP."""
    sides = {}
    for side, (curve, recipe) in curves.items():
        last = curve[-1]
        sides[side] = {"curve": curve, "final_mask_ap": last["mask_ap"],
                       "final_mask_ap50": last["mask_ap50"],
                       "steps": last["steps"],
                       "seconds_per_step": round(
                           60 * last["minutes"] / max(1, last["steps"]), 3),
                       "recipe": recipe}
    for side in sides:
        for other in sides:
            if other != side:
                sides[side]["minutes_to_" + other + "_final_mask_ap"] = \
                    minutes_to_reach(sides[side]["curve"],
                                     sides[other]["final_mask_ap"])
    return sides


def side_label(name, side):
    """The plot's name of a side: an mrcnn side with its precision."""
    recipe = side.get("recipe") or {}
    if "MIXED_PRECISION" not in recipe:
        return name
    return "{} ({})".format(name, recipe["MIXED_PRECISION"] or "float32")


def plot_curves(sides, path):
    """A PNG of mask AP and AP50 against training minutes, one line a side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in zip(axes, ("mask_ap", "mask_ap50"),
                              ("mask AP@[.5:.95]", "mask AP50")):
        for side, result in sides.items():
            ax.plot([p["minutes"] for p in result["curve"]],
                    [p[key] for p in result["curve"]], marker="o",
                    label=side_label(side, result))
        ax.set_xlabel("training minutes (evaluation excluded)")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def read_report(path):
    """The last time_to_accuracy JSON line of the file at path (a run's
    stdout as written)."""
    with open(path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if report.get("benchmark") == "time_to_accuracy":
            return report
    raise SystemExit("time_to_accuracy: {} holds no time_to_accuracy JSON "
                     "line".format(path))


def sides_against(report, earlier, path):
    """The sides of `earlier` (a report read from path) to put beside this
    run's, as {name: side} with "from" (path and date) added; the curves
    stay as that run measured them.

    report: this run's settings (the COMPARABLE keys). Raises SystemExit
    naming each setting that differs.
    """
    differ = ["{}: {!r} here, {!r} in {}".format(key, report.get(key),
                                                 earlier.get(key), path)
              for key in COMPARABLE if report.get(key) != earlier.get(key)]
    if differ:
        raise SystemExit("time_to_accuracy: --against {} ran otherwise, "
                         "its curves are not comparable:\n  {}".format(
                             path, "\n  ".join(differ)))
    sides = {}
    for name, side in earlier["sides"].items():
        kept = {k: v for k, v in side.items()
                if not k.startswith("minutes_to_")}
        kept["from"] = {"file": path, "date": earlier["date"]}
        if name in report["sides"]:
            name = "{} @ {}".format(name, earlier["date"])
        sides[name] = kept
    return sides


def with_earlier_sides(report, paths):
    """report with the sides of each earlier report in paths added and
    every side's minutes to each other side's final AP worked out again."""
    sides = dict(report["sides"])
    for path in paths:
        sides.update(sides_against(dict(report, sides=sides),
                                   read_report(path), path))
    curves = {name: (side["curve"], side["recipe"])
              for name, side in sides.items()}
    merged = summarize(curves)
    for name, side in sides.items():
        if "from" in side:
            merged[name]["from"] = side["from"]
    return dict(report, sides=merged)


def main(argv=None):
    """Merges reports already written: the first file's sides with the
    others' beside them, printed as one JSON line, plotted to --out."""
    import argparse
    import os
    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("report", help="a time_to_accuracy JSON line file")
    parser.add_argument("--against", action="append", default=[],
                        metavar="REPORT", required=True)
    parser.add_argument("--out", required=True, help="folder of the PNG")
    args = parser.parse_args(argv)
    report = with_earlier_sides(read_report(args.report), args.against)
    os.makedirs(args.out, exist_ok=True)
    report["png"] = os.path.join(args.out, "time_to_accuracy.png")
    plot_curves(report["sides"], report["png"])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
