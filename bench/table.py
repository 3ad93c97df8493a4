"""Print the latest benchmark results (bench/results/*.json) as the markdown tables of docs/speed.md."""

import json

from bench.common import RESULTS


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main() -> None:
    smoke = [name for name in ("strategy_overhead", "loop_efficiency", "savings", "loader_speed", "optimizer_speed",
                               "startup")
             if (load(name) or {}).get("smoke")]
    if smoke:
        print(f"(--smoke sizes in {', '.join(smoke)}: these figures only show that the benchmarks run)\n")
    overhead = load("strategy_overhead")
    if overhead:
        print(f"Strategy overhead (`{overhead['command']}`, {overhead['device']}, batch {overhead['batch']}):\n")
        sizes = list(overhead["sizes"])
        print("| strategy | " + " | ".join(f"plan ms, N={int(n):,} | observe µs, N={int(n):,}" for n in sizes) + " |")
        print("|---|" + "---|---|" * len(sizes))
        for name in overhead["sizes"][sizes[0]]:
            if name == "infobatch vs reference":
                continue
            cells = []
            for n in sizes:
                r = overhead["sizes"][n][name]
                cells += [f"{r['plan_ms']:.1f}", f"{r['observe_us']:.1f}"]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()
    loop = load("loop_efficiency")
    if loop:
        print(f"Loop efficiency (`{loop['command']}`, {loop['device']}): {loop['model']}, batch {loop['batch']}, "
              f"{loop['precision']}: real loop {loop['real_images_per_s']:.0f} images/s, bare step loop "
              f"{loop['bare_images_per_s']:.0f} images/s, **efficiency {loop['efficiency']:.2f}**.\n")
    savings = load("savings")
    if savings:
        print(f"Savings realisation (`{savings['command']}`, {savings['device']}, {savings['repeats']} interleaved repeats, median costs):\n")
        print("| strategy | saving_samples | saving_wall | realisation |")
        print("|---|---|---|---|")
        for name, r in savings["strategies"].items():
            print(f"| {name} | {r['saving_samples']:.3f} | {r['saving_wall']:.3f} | {r['realisation']:.2f} |")
        print()
    loader = load("loader_speed")
    if loader:
        print(f"Loader speed (`{loader['command']}`, {loader['device']}, {loader['n']:,} CIFAR-size images, batch "
              f"{loader['batch']}, {loader['workers']} workers): device-resident {loader['device_epoch_s']:.2f} s/epoch, "
              f"DataLoader {loader['dataloader_epoch_s']:.2f} s/epoch, **{loader['speedup']:.1f}x**.\n")
    optimizers = load("optimizer_speed")
    if optimizers:
        print(f"Optimizer step (`{optimizers['command']}`, {optimizers['device']}, {optimizers['model']}, "
              f"{optimizers['parameters']:,} parameters): " + "; ".join(
                  f"{name.upper()} ours {r['old_ms_per_step']:.1f} ms, timm {r['timm_ms_per_step']:.1f} ms "
                  f"(**{r['speedup']:.2f}x**)" for name, r in optimizers["optimizers"].items()) + ".")

    startup = load("startup")
    if startup:
        print(f"\nStart-up (`{startup['command']}`, {startup['machine']}, median of {startup['repeats']} fresh processes): "
              f"`infobatch-run --help` {startup['help_s']:.2f} s (target < {startup['help_target_s']:g} s); "
              f"`import infobatch_runner.library` {startup['import_library_s']:.2f} s, of which `import torch` "
              f"{startup['import_torch_s']:.2f} s (the library's own +{startup['library_over_torch_s']:.2f} s, "
              f"target < {startup['library_over_torch_target_s']:g} s).")


if __name__ == "__main__":
    main()
