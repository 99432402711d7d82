"""The training pipeline: ingest -> validate -> features -> trainings in parallel -> evaluate -> gate -> register."""


from kfp import dsl

from pipelines import components as c
from pipelines.segmentation import REGISTERED

NAME = "coherency-training"


def segmentation_branch(repo: str, profile: str, network: str, registered_name: str, suites, data_version) -> None:
    """train -> evaluate against the champion -> register -> promote under the gate, for one network."""
    trained = c.train_segmenter(repo=repo, profile=profile, network=network, suites=suites)
    model = trained.outputs["model"]
    evaluate = c.evaluate_segmenter(repo=repo, profile=profile, network=network, model=model)
    register = c.register_segmenter(repo=repo, profile=profile, network=network, model=model,
                                    evaluation=evaluate.outputs["evaluation"], data_version=data_version)
    for task, verb in ((trained, "train"), (evaluate, "evaluate"), (register, "register")):
        task.set_display_name(f"{verb}-{network}")
    with dsl.If(evaluate.outputs["Output"] == True):  # noqa: E712
        c.promote(repo=repo, name=registered_name, version=register.output,
                  evaluation=evaluate.outputs["evaluation"]).set_display_name(f"promote-{network}")


@dsl.pipeline(name=NAME, description="Version and validate the data, build features, train, evaluate, register.")
def training(repo: str, profile: str = "demo", photos: str = "", online: str = "sqlite") -> str:
    ingest = c.ingest(repo=repo, profile=profile, photos=photos)
    validate = c.validate(repo=repo, profile=profile, data=ingest.outputs["data"])
    features = c.features(repo=repo, online=online, suites=validate.outputs["Output"])
    trained = {network: c.train(repo=repo, profile=profile, network=network, features_ready=features.outputs["Output"])
               .set_display_name(f"train-{network}") for network in ("gbm", "sequence")}
    evaluate = c.evaluate_prognosis(repo=repo, profile=profile, gbm=trained["gbm"].outputs["model"],
                                    sequence=trained["sequence"].outputs["model"])
    register = c.register_prognosis(repo=repo, gbm=trained["gbm"].outputs["model"],
                                    sequence=trained["sequence"].outputs["model"],
                                    evaluation=evaluate.outputs["evaluation"], data_version=ingest.outputs["Output"])
    with dsl.If(evaluate.outputs["Output"] == True):  # noqa: E712 (kfp builds a condition from ==)
        c.promote(repo=repo, name="coherency-prognosis", version=register.output,
                  evaluation=evaluate.outputs["evaluation"])
    for network, registered_name in REGISTERED.items():
        segmentation_branch(repo, profile, network, registered_name, suites=validate.outputs["Output"],
                            data_version=ingest.outputs["Output"])
    return register.output

