"""`coherency`: measure scans, generate and import data, compare measurements with phantom truth."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coherency.monitor_cli import monitor_app

if TYPE_CHECKING:
    from features.phantoms import PhantomConfig

app = typer.Typer(help="Coherency: 3D wound assessment.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Make, import and version the data under data/.", no_args_is_help=True)
app.add_typer(data_app, name="data")
pipeline_app = typer.Typer(help="The Kubeflow training pipeline: run locally, compile, submit.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(monitor_app, name="monitor")  # coherency/monitor_cli.py: drift monitoring

Profile = Annotated[str, typer.Option(help="params.yaml profile: tiny, demo or full.")]


def fail(message: str) -> None:
    """One line on stderr, exit status 2: the contract for every bad input."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def clean_errors(command: Callable) -> Callable:
    """Turn input errors into one line and exit status 2 instead of a traceback."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        from features.io import ScanError

        try:
            return command(*args, **kwargs)
        except ScanError as e:
            fail(str(e))
        except (OSError, ValueError) as e:
            fail(f"{type(e).__name__}: {e}".splitlines()[0])

    return wrapper


@app.command()
@clean_errors
def measure(
    scan: Annotated[Path, typer.Argument(help="Labelled scan (.ply or .pcd, metres).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line.")] = False,
    profile: Profile = "demo",
) -> None:
    """Measure the wound in a labelled scan: area, volume, depth, outline, tissue, intervals."""
    from coherency.report import measurement_table
    from features.io import read_scan
    from features.measure import MeasureSettings, measure
    from features.params import load_params

    settings = MeasureSettings.from_params(load_params("measure", profile))
    result = measure(read_scan(scan, max_points=settings.max_points), settings)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(measurement_table(result))


@data_app.command("phantoms")
@clean_errors
def phantoms(
    n: Annotated[int, typer.Option(min=1, max=100_000, help="Number of scans.")] = 6,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/phantoms"),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same files.")] = 2026,
    profile: Profile = "demo",
) -> None:
    """Write textured wound phantoms (PLY, photo, camera, metadata, exact truth)."""
    from features.params import load_params
    from features.phantoms import PhantomConfig, write_phantoms

    config = PhantomConfig.from_params(load_params("phantoms", profile))
    out.mkdir(parents=True, exist_ok=True)
    paths = write_phantoms(n, out, seed, config)
    typer.echo(f"wrote {len(paths)} phantoms to {out}")


@data_app.command("import-photos")
@clean_errors
def import_photos(
    source: Annotated[Path, typer.Argument(help="FUSeg folder holding train/images and train/labels.")],
    out: Annotated[Path, typer.Option(help="Destination under data/.")] = Path("data/photos"),
) -> None:
    """Copy the annotated wound photos (images + masks) into data/."""
    from coherency.photos import import_photos as run_import

    count = run_import(source, out)
    typer.echo(f"imported {count} photo/mask pairs into {out}")


@data_app.command("cohort")
@clean_errors
def cohort(
    profile: Profile = "demo",
    out: Annotated[Path, typer.Option(help="Data folder: writes OUT/cohort and OUT/features/tables.")] = Path("data"),
) -> None:
    """Simulate the synthetic patient cohort (docs/cohort.md), its oracle and the Feast feature tables."""
    made = _write_cohort(profile, out)
    typer.echo(f"wrote {len(made.wounds)} wounds, {len(made.visits)} visits to {out / 'cohort'}")


def _write_cohort(profile: str, out: Path):
    from features.cohort import CohortConfig, generate_cohort
    from features.params import load_params

    config = CohortConfig.from_params(load_params("cohort", profile))
    return generate_cohort(config, out / "cohort", out / "features" / "tables")


@data_app.command("validate")
@clean_errors
def validate(
    data: Annotated[Path, typer.Option(help="Data folder (phantoms/, photos/, cohort/, features/tables/).")]
    = Path("data"),
    reports: Annotated[Path, typer.Option(help="Report folder: NAME.json + NAME.md per suite, index.md.")]
    = Path("results/quality"),
    require: Annotated[list[str] | None, typer.Option(help="Parts that must exist (repeat; default all).")] = None,
    profile: Profile = "demo",
) -> None:
    """Check data/ against the Great Expectations suites; exit 2 naming the report when one fails."""
    from features.quality import PARTS, QualityLimits, validate_data

    summary = validate_data(data, reports, QualityLimits.for_profile(profile), tuple(require or PARTS))
    typer.echo(f"{len(summary['suites'])} suites passed; report: {summary['report']}")


@data_app.command("generate")
@clean_errors
def generate(
    profile: Profile = "demo",
    photos: Annotated[Path | None, typer.Option(help="FUSeg folder to import when data/photos is absent; "
                                                     "missing: synthetic stand-in photos instead.")] = None,
    force: Annotated[bool, typer.Option(help="Regenerate even if the data exists.")] = False,
) -> None:
    """Regenerate data/ deterministically from params.yaml (each part skipped when it already exists)."""
    from coherency.photos import phantom_textures
    from features.params import load_params
    from features.phantoms import PhantomConfig, write_phantoms

    section = load_params("phantoms", profile)
    config = PhantomConfig.from_params(section)
    _generate_photos(config, int(section.get("standin_photos", 0)), photos, force)
    out = Path("data/phantoms")
    if out.is_dir() and any(out.glob("*.ply")) and not force:
        typer.echo(f"{out} exists; keeping it (use --force to regenerate)")
    else:
        out.mkdir(parents=True, exist_ok=True)
        paths = write_phantoms(config.n, out, config.seed, phantom_textures(config))
        typer.echo(f"wrote {len(paths)} phantoms to {out}")
    if Path("data/cohort/visits.parquet").is_file() and not force:
        typer.echo("data/cohort exists; keeping it (use --force to regenerate)")
    else:
        made = _write_cohort(profile, Path("data"))
        typer.echo(f"wrote {len(made.wounds)} wounds, {len(made.visits)} visits to data/cohort")


def _generate_photos(config: PhantomConfig, standins: int, fuseg: Path | None, force: bool) -> None:
    """data/photos: FUSeg when that folder exists, else synthetic stand-ins; --force redoes all but a FUSeg import."""
    from coherency.photos import SYNTHETIC, ensure_photos, photo_source

    folder = Path(config.photos_dir or "data/photos")
    given = fuseg is not None and fuseg.is_dir()
    if force and (given or photo_source(folder) == SYNTHETIC):
        shutil.rmtree(folder, ignore_errors=True)
    if ensure_photos(folder, fuseg, standins, config) != SYNTHETIC:
        return
    typer.echo(f"{folder}: synthetic stand-in photos rendered from phantoms, not FUSeg; the U-Net trains on them")
    if given:
        typer.echo(f"  {fuseg} was not imported over them: add --force (or delete data/) to use it")
    elif fuseg is not None:
        typer.echo(f"  {fuseg} not found")


@app.command()
@clean_errors
def compare(
    folder: Annotated[Path, typer.Argument(help="Folder of phantoms with NAME.truth.json beside each scan.")]
    = Path("data/phantoms"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary on the last line.")] = False,
    profile: Profile = "demo",
) -> None:
    """Measure every phantom in FOLDER and print measurement against truth."""
    from coherency.report import compare_folder

    summary = compare_folder(folder, profile)
    if as_json:
        typer.echo(json.dumps(summary))



@pipeline_app.command("run")
@clean_errors
def pipeline_run(
    profile: Profile = "demo",
    photos: Annotated[str, typer.Option(help="FUSeg folder to import when data/photos is absent.")] = "",
    online: Annotated[str, typer.Option(help="Feast online store: sqlite or redis.")] = "sqlite",
    unless_champion: Annotated[bool, typer.Option(help="Do nothing when a champion is registered.")] = False,
) -> None:
    """Run the whole training pipeline here through kfp's local runner; print the registered versions."""
    from models import registry
    from pipelines.modelling import PROGNOSIS, REGISTERED_MODELS
    from pipelines.run import run_local

    registry.use_store(Path("mlruns"))
    if unless_champion and all(registry.alias_version(n, registry.CHAMPION) for n in REGISTERED_MODELS):
        typer.echo(f"every model has a {registry.CHAMPION}; not training (drop --unless-champion to retrain)")
    else:
        typer.echo(f"registered {PROGNOSIS} version {run_local(Path('.'), profile, photos, online)}")
    _print_versions()


@pipeline_app.command("compile")
@clean_errors
def pipeline_compile() -> None:
    """Write pipelines/compiled/training.yaml (commit it; a test fails when it drifts from the source)."""
    from pipelines.compile import compile_training

    typer.echo(f"wrote {compile_training()}")


@pipeline_app.command("submit")
@clean_errors
def pipeline_submit(
    host: Annotated[str, typer.Option(help="Kubeflow Pipelines endpoint, e.g. http://localhost:8080.")],
    repo: Annotated[str, typer.Option(help="Project root inside the step image.")] = "/app",
    profile: Profile = "demo",
) -> None:
    """Submit the compiled pipeline to a Kubeflow cluster."""
    from pipelines.compile import COMPILED
    from pipelines.run import submit

    typer.echo(f"submitted run {submit(host, repo, profile, COMPILED)}")


@app.command()
@clean_errors
def models() -> None:
    """List the registered model versions with their aliases and metrics."""
    _print_versions()


def _print_versions() -> None:
    from models import registry
    from pipelines.modelling import REGISTERED_MODELS

    registry.use_store(Path("mlruns"))
    for name in REGISTERED_MODELS:
        for row in registry.versions(name):
            aliases = ",".join(row["aliases"]) or "-"
            metrics = " ".join(f"{k}={v:.4f}" for k, v in row["metrics"].items())
            photos = f"  photos {row['photo_source']}" if row.get("photo_source") else ""
            typer.echo(f"{name:<20} v{row['version']:<3} {aliases:<20} {metrics}  data {row['data_version']}{photos}")


TRAINABLE = ("gbm", "sequence", "prognosis", "unet", "pointnet")


@app.command()
@clean_errors
def train(
    model: Annotated[str, typer.Argument(help=f"One of {', '.join(TRAINABLE)}.")],
    out: Annotated[Path, typer.Option(help="Folder for the trained model files.")] = Path("results/models"),
    data: Annotated[Path, typer.Option(help="Data folder (see `coherency data generate`).")] = Path("data"),
    profile: Profile = "demo",
) -> None:
    """Train one model outside the pipeline, with its params.yaml section; prints its validation metrics."""
    if model not in TRAINABLE:
        fail(f"unknown model '{model}'; choose one of {', '.join(TRAINABLE)}")
    if model == "unet":
        from features.params import load_params
        from models.lit.photos import PhotoTrainParams, train_photo_segmenter

        photos = data / "photos"
        if not (photos / "images").is_dir():
            fail(f"{photos} has no images/; import them with 'coherency data import-photos DIR'")
        params = PhotoTrainParams.from_params(load_params("unet", profile))
        typer.echo(f"best checkpoint: {train_photo_segmenter(photos, out / 'unet', params)}")
        return
    if model == "pointnet":
        from features.params import load_params
        from models.lit.points import PointTrainParams, train_point_segmenter

        if not any((data / "phantoms").glob("*.ply")):
            fail(f"{data / 'phantoms'} has no scans; make them with 'coherency data generate'")
        params = PointTrainParams.from_params(load_params("pointnet", profile))
        typer.echo(f"best checkpoint: {train_point_segmenter(data / 'phantoms', out / 'pointnet', params)}")
        return
    from models.prognosis import train_from_params

    metrics = train_from_params(model, data, out / model, profile)
    for week in ("week_0", "week_4"):
        scores = {name: round(m["auroc"], 4) for name, m in metrics.get(week, {}).get("models", {}).items()}
        typer.echo(f"{week} AUROC: {scores}")


@app.command("segment-photos")
@clean_errors
def segment_photos(
    in_dir: Annotated[Path, typer.Argument(help="Folder of JPEG/PNG photos.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the masks (same file names, .png, same size).")],
    checkpoint: Annotated[Path | None, typer.Option(help="A U-Net checkpoint (`coherency train unet`) instead of "
                                                         "the registered champion.")] = None,
) -> None:
    """Write a binary wound mask (0/255 PNG, the photo's size) with the champion U-Net for every photo in IN_DIR."""
    from models.segment import load_unet_checkpoint
    from models.segment import segment_photos as run_segmentation

    if checkpoint is not None:
        if not checkpoint.is_file():
            fail(f"{checkpoint} not found; train one with 'coherency train unet'")
        net, size = load_unet_checkpoint(checkpoint)
    else:
        net, size = _champion_unet()
    typer.echo(f"wrote {run_segmentation(in_dir, out_dir, net, size)} masks to {out_dir}")


def _champion_unet():
    from models import registry
    from pipelines.segmentation import PHOTOS, load_registered

    registry.use_store(Path("mlruns"))
    if registry.alias_version(PHOTOS, registry.CHAMPION) is None:
        fail(f"no {PHOTOS}@{registry.CHAMPION} registered; run 'coherency pipeline run' or pass --checkpoint")
    net, metadata = load_registered(PHOTOS, registry.CHAMPION)
    return net, int(metadata["size"])


# `serve` (a group, so that `serve manifests` can join it) and `assess` live in coherency.serve_cli, which uses
# fail and clean_errors above
from coherency import serve_cli  # noqa: E402

app.add_typer(serve_cli.serve_app, name="serve")
app.command()(serve_cli.assess)
from coherency import up_cli  # noqa: E402

app.command()(up_cli.up)
from coherency import api_cli  # noqa: E402

app.command()(api_cli.api)
app.add_typer(api_cli.users_app, name="users")
