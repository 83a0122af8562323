"""Real image sets read from disk in torchvision's layout (so its downloads are reused), scaled to [-1, 1].

``<data_dir>`` is ``paths.data_dir`` (``$GAN_LAB_DATA_DIR``, default ``./data``); a relative one is taken
from the current directory and ``~`` is expanded. MNIST and Fashion-MNIST (IDX files, :mod:`.idx`) and
CIFAR-10 (Python pickles, read by a restricted unpickler that can only rebuild numpy arrays, :mod:`.cifar`)
are loaded whole into memory; Fashion-MNIST is also found where Debian's ``dataset-fashion-mnist`` installs it.
CelebA and any folder of images (:mod:`.image_files`) are decoded with Pillow, either once into memory or a
minibatch at a time (:class:`ImageFilesSource`, which DataLoader workers decode in parallel), and so is a zip in
the field's layout (stylegan2-ada-pytorch's ``dataset_tool.py``; :mod:`.zipped`), labels included.
Every problem with the files on disk is a :class:`~gan_lab.errors.ConfigError` naming the key to change
(:mod:`.common`).
"""

# Re-exported because configs name the readers here: conf/dataset/*.yaml and every saved run's config.yaml
# hold `_target_: gan_lab.data.files.mnist` and the like, which must keep resolving for a resume.

from gan_lab.data.files.cifar import CIFAR10_TEST, CIFAR10_TRAIN, SafeUnpickler, cifar10, load_pickle
from gan_lab.data.files.common import DATA_DIR_KEY, resolve_dir
from gan_lab.data.files.idx import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, fashion_mnist, mnist, read_idx
from gan_lab.data.files.image_files import (
    CELEBA_SPLITS,
    CELEBA_URL,
    IMAGE_EXTENSIONS,
    IN_MEMORY_LIMIT,
    RESAMPLE,
    CropTooLarge,
    ImageFilesSource,
    celeba,
    decode_image,
    folder,
)
from gan_lab.data.files.zipped import ZipImagesSource, image_zip

__all__ = ["CELEBA_SPLITS", "CELEBA_URL", "CIFAR10_TEST", "CIFAR10_TRAIN", "DATA_DIR_KEY", "IDX_IMAGES_MAGIC",
           "IDX_LABELS_MAGIC", "IMAGE_EXTENSIONS", "IN_MEMORY_LIMIT", "RESAMPLE", "CropTooLarge", "ImageFilesSource",
           "SafeUnpickler", "ZipImagesSource", "celeba", "cifar10", "decode_image", "fashion_mnist", "folder",
           "image_zip", "load_pickle", "mnist", "read_idx", "resolve_dir"]
