# The image every pipeline step runs in on a cluster (pipelines/components.py BASE_IMAGE):
#   docker build -t ghcr.io/coherency/coherency:0.1.0 .
# The project lives at /app, the `repo` argument of `coherency pipeline submit` (data/ comes from the DVC
# remote: mount it or `dvc pull` there). The local runner does not use this image.
FROM python:3.11-slim

# open3d needs libusb-1.0 and libgomp at import time
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libusb-1.0-0 libgomp1 git \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 DVC_NO_ANALYTICS=1 DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true \
    OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
WORKDIR /app

# torch first, from the CUDA index so the predictor can use a GPU node; dependencies before the source
# so a code change does not reinstall them
RUN pip install torch==2.13.0
COPY pyproject.toml README.md ./
RUN mkdir coherency features models pipelines && touch coherency/__init__.py \
    && pip install '.[s3]' && pip uninstall -y coherency
COPY . .
RUN pip install --no-deps -e .

ENTRYPOINT ["coherency"]
