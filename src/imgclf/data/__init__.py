"""Data: sources (image folders, CSV manifests, built-in datasets), safe decoding, transforms, resumable loading.

>>> from imgclf import data
>>> splits = data.load_source("digits", seed=0)          # or a folder / a .csv manifest
>>> image, label = splits.train[0]                       # PIL RGB image, int label
>>> # tags = data.load_source("tags.csv")                 # path,labels[,split] with labels "cat;dog"
>>> # tags.task, tags.train.multi_hot.shape, tags.train[0][1]   # 'multilabel', (N, C), float32 (C,) 0/1
>>> # loader = data.make_loader(data.IndexedDataset(splits.train, data.build_eval_transform(cfg)),
>>> #                           data.ResumableSampler(splits.train.labels, seed=0), batch_size=64)
"""

from imgclf.data._builtin import BUILTIN_DATASETS
from imgclf.data._composites import make_multilabel_composites
from imgclf.data._decode import (
    IMAGE_EXTENSIONS,
    IMAGE_FORMATS,
    BadImageError,
    DataWarning,
    ImageInfo,
    check_image,
    image_formats,
    open_image,
    probe_image,
    to_rgb,
)
from imgclf.data._fingerprint import DataChange, compare_data, record_data
from imgclf.data._inputs import InputImages, describe_all, expand_inputs, sample_tensors, to_pil
from imgclf.data._loader import (
    BadItem,
    Batch,
    IndexedDataset,
    class_counts,
    collate_skip_bad,
    default_workers,
    imbalance_ratio,
    make_loader,
)
from imgclf.data._memory import MemoryLoader, decode_to_memory
from imgclf.data._pixels import denormalize, normalize
from imgclf.data._sampler import ResumableSampler
from imgclf.data._samples import SampleList, Splits
from imgclf.data._scan import list_images
from imgclf.data._sources import load_source
from imgclf.data._split import kfold, write_split
from imgclf.data._synthetic import make_synthetic_dataset
from imgclf.data._transforms import (
    AUGMENT_PRESETS,
    build_eval_transform,
    build_train_transform,
    mixup_cutmix,
    shift_pixels,
)
from imgclf.utils import publish

__all__ = [
    "AUGMENT_PRESETS",
    "BUILTIN_DATASETS",
    "IMAGE_EXTENSIONS",
    "IMAGE_FORMATS",
    "BadImageError",
    "BadItem",
    "Batch",
    "DataChange",
    "DataWarning",
    "ImageInfo",
    "IndexedDataset",
    "InputImages",
    "MemoryLoader",
    "ResumableSampler",
    "SampleList",
    "Splits",
    "build_eval_transform",
    "build_train_transform",
    "check_image",
    "class_counts",
    "collate_skip_bad",
    "compare_data",
    "default_workers",
    "denormalize",
    "describe_all",
    "decode_to_memory",
    "expand_inputs",
    "image_formats",
    "imbalance_ratio",
    "kfold",
    "list_images",
    "load_source",
    "make_loader",
    "make_multilabel_composites",
    "make_synthetic_dataset",
    "mixup_cutmix",
    "normalize",
    "record_data",
    "open_image",
    "sample_tensors",
    "to_pil",
    "to_rgb",
    "probe_image",
    "shift_pixels",
    "write_split",
]

publish(__name__, globals(), __all__)
