"""ControlNet structure maps from controlnet-aux detectors (canny, depth, edges, pose, ...).

One `ControlPreprocessor` subclass per detector. Each holds its parameters (the registry entry's
immutable defaults, updated with the caller's, unknown keys rejected) and its detector, built once.
The output is uniform: an RGB PIL image at the requested size, resized from the detector's map with
PIL bicubic, the rule `BlipDiffusionControlNetPipeline` applies to every control image.

Importing this module imports ``controlnet_aux`` (which imports every detector, timm and torchvision);
`blipdiff_plugins.registry.PREPROCESSORS.get` imports it on first use only and turns a missing
package into an ``ImportError`` with the ``pip install`` line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import types
from typing import Any, Mapping

import numpy as np
import PIL.Image
import torch

try:
    import controlnet_aux  # noqa: F401  (imports timm and torchvision)
except ImportError as error:  # re-raised by the registry with the install line
    raise ImportError(
        "controlnet-aux is needed for ControlNet preprocessors. Install it with: pip install 'blipdiff_plugins[controlnet]'",
        name="controlnet_aux",
    ) from error

from ..utils.images import ImageLike, load_image

DEFAULT_ANNOTATOR_WEIGHTS = "lllyasviel/Annotators"


def _as_rgb_array(image: ImageLike) -> np.ndarray:
    """Any supported image (path, PIL, array, ``(3, h, w)`` tensor in [0, 1]) as ``(height, width, 3)`` uint8."""
    if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    return np.asarray(load_image(image, argument="control_source_image", alpha="drop").convert("RGB"))


def resize_control_map(image: PIL.Image.Image, height: int | None, width: int | None) -> PIL.Image.Image:
    """RGB at ``(width, height)``, PIL bicubic (the original pipeline's control-image resize)."""
    image = image.convert("RGB")
    if height is None or width is None or image.size == (width, height):
        return image
    return image.resize((width, height), resample=PIL.Image.BICUBIC)


@contextlib.contextmanager
def _numpy_seed(seed: int | None):
    """Seeded ``np.random`` inside the block, the caller's global state restored afterwards."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class ControlPreprocessor:
    """A controlnet-aux detector with fixed parameters, producing RGB control maps.

    Build through `load_preprocessor(name, ...)` or the subclass directly.

    Args:
        params (`Mapping`, *optional*): parameters that replace the registry defaults of this detector
            (e.g. ``{"low_threshold": 30, "high_threshold": 70}`` for canny); unknown keys raise.
        weights (`str`, *optional*): Hub repo or local folder holding the detector's weight files;
            defaults to ``"lllyasviel/Annotators"``. Unused by weight-free detectors.
        detector (`object`, *optional*): an already built controlnet-aux detector, used as is.
        device (`str` or `torch.device`, *optional*): where the detector's networks run.
    """

    name: str = ""
    needs_weights: bool = True

    def __init__(
        self,
        *,
        params: Mapping[str, Any] | None = None,
        weights: str | os.PathLike | None = None,
        detector=None,
        device: str | torch.device | None = None,
    ):
        from ..registry import PREPROCESSORS

        defaults = PREPROCESSORS.defaults(self.name)
        params = dict(params or {})
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(
                f"`params` of preprocessor {self.name!r} has unknown key(s) {unknown}; it takes {sorted(defaults)}."
            )
        defaults.update(params)
        self.params = types.MappingProxyType(defaults)
        self.weights = str(weights) if weights is not None else (DEFAULT_ANNOTATOR_WEIGHTS if self.needs_weights else None)
        if detector is None:
            detector = self._load_detector(self.weights)
        if device is not None and hasattr(detector, "to"):
            detector = detector.to(device)
        self.detector = detector

    def _load_detector(self, weights: str):
        """The detector with its published weights read from ``weights`` (repo id or folder)."""
        raise NotImplementedError

    def _load_with_message(self, loader):
        try:
            return loader()
        except (OSError, RuntimeError, ValueError, KeyError) as error:
            where = "folder" if os.path.isdir(self.weights) else "Hub repo"
            raise OSError(
                f"Preprocessor {self.name!r}: could not load its weights from the {where} {self.weights!r} ({error}). "
                f"Pass `weights=` a folder holding the lllyasviel/Annotators files, or run once online."
            ) from error

    @classmethod
    def random_detector(cls):
        """The detector with randomly initialised networks (tests and benchmarks; its maps are meaningless)."""
        raise NotImplementedError

    def detect(self, image: np.ndarray) -> PIL.Image.Image:
        """The detector's map of an ``(h, w, 3)`` uint8 array, at controlnet-aux's own size."""
        params = dict(self.params)
        resolution = params.pop("detect_resolution")
        output = self.detector(image, detect_resolution=resolution, image_resolution=resolution, output_type="pil", **params)
        return output

    def __call__(self, image: ImageLike, *, height: int | None = None, width: int | None = None) -> PIL.Image.Image:
        """The control map of ``image``: RGB PIL at ``height`` x ``width`` (the source image's size by default).

        Args:
            image: path, PIL image, uint8 array or ``(3, h, w)`` tensor in [0, 1].
            height (`int`, *optional*): output height, e.g. the generation height.
            width (`int`, *optional*): output width.
        """
        array = _as_rgb_array(image)
        if height is None or width is None:
            height, width = array.shape[:2]
        return resize_control_map(self.detect(array), height, width)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, params={dict(self.params)}, weights={self.weights!r})"


# ---------------------------------------------------------------------------------- weight-free
class CannyPreprocessor(ControlPreprocessor):
    """Canny edges (OpenCV), white on black."""

    name = "canny"
    needs_weights = False

    def _load_detector(self, weights):
        from controlnet_aux.canny import CannyDetector

        return CannyDetector()


class ContentShufflePreprocessor(ControlPreprocessor):
    """Content shuffle: the image warped by a smooth random flow (controlnet 'shuffle'). ``seed`` fixes the flow."""

    name = "shuffle"
    needs_weights = False

    def _load_detector(self, weights):
        from controlnet_aux.shuffle import ContentShuffleDetector

        return ContentShuffleDetector()

    def detect(self, image):
        params = dict(self.params)
        resolution = params.pop("detect_resolution")
        with _numpy_seed(params.pop("seed")):
            return self.detector(image, detect_resolution=resolution, image_resolution=resolution, output_type="pil", **params)


# ---------------------------------------------------------------------------------- weight-based
class HEDPreprocessor(ControlPreprocessor):
    """HED soft edges (ControlNetHED_Apache2, ``ControlNetHED.pth``)."""

    name = "hed"

    def _load_detector(self, weights):
        from controlnet_aux.hed import HEDdetector

        return self._load_with_message(lambda: HEDdetector.from_pretrained(weights))

    @classmethod
    def random_detector(cls):
        from controlnet_aux.hed import ControlNetHED_Apache2, HEDdetector

        return HEDdetector(ControlNetHED_Apache2().eval())


class PidiPreprocessor(ControlPreprocessor):
    """PiDiNet soft edges (``table5_pidinet.pth``)."""

    name = "pidi"

    def _load_detector(self, weights):
        from controlnet_aux.pidi import PidiNetDetector

        return self._load_with_message(lambda: PidiNetDetector.from_pretrained(weights))

    @classmethod
    def random_detector(cls):
        from controlnet_aux.pidi import PidiNetDetector
        from controlnet_aux.pidi.model import pidinet

        return PidiNetDetector(pidinet().eval())


class MidasPreprocessor(ControlPreprocessor):
    """MiDaS DPT-Hybrid relative depth (``dpt_hybrid-midas-501f0c75.pt``)."""

    name = "midas"

    def _load_detector(self, weights):
        from controlnet_aux.midas import MidasDetector

        return self._load_with_message(lambda: MidasDetector.from_pretrained(weights))

    @classmethod
    def random_detector(cls, backbone: str = "vitb_rn50_384"):
        """Random DPT-Hybrid; a smaller ``backbone`` (e.g. ``"vitb16_384"``, without the ResNet stem) for quick tests."""
        from controlnet_aux.midas import MidasDetector
        from controlnet_aux.midas.api import MiDaSInference
        from controlnet_aux.midas.midas.dpt_depth import DPTDepthModel

        # MiDaSInference.__init__ reads a checkpoint; build the same module around a fresh network.
        inference = MiDaSInference.__new__(MiDaSInference)
        torch.nn.Module.__init__(inference)
        inference.model = DPTDepthModel(path=None, backbone=backbone, non_negative=True).eval()
        return MidasDetector(inference)


class MLSDPreprocessor(ControlPreprocessor):
    """M-LSD straight line segments (``mlsd_large_512_fp32.pth``)."""

    name = "mlsd"

    def _load_detector(self, weights):
        from controlnet_aux.mlsd import MLSDdetector

        return self._load_with_message(lambda: MLSDdetector.from_pretrained(weights))

    @classmethod
    def random_detector(cls):
        from controlnet_aux.mlsd import MLSDdetector
        from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large

        return MLSDdetector(MobileV2_MLSD_Large().eval())


class LineartPreprocessor(ControlPreprocessor):
    """Line art of photos (``sk_model.pth``; ``coarse=True`` uses ``sk_model2.pth``)."""

    name = "lineart"

    def _load_detector(self, weights):
        from controlnet_aux.lineart import LineartDetector

        return self._load_with_message(lambda: LineartDetector.from_pretrained(weights))

    @classmethod
    def random_detector(cls):
        from controlnet_aux.lineart import Generator, LineartDetector

        return LineartDetector(Generator(3, 1, 3).eval(), Generator(3, 1, 3).eval())


class LineartAnimePreprocessor(ControlPreprocessor):
    """Anime line art (``netG.pth``)."""

    name = "lineart_anime"

    def _load_detector(self, weights):
        from controlnet_aux.lineart_anime import LineartAnimeDetector

        return self._load_with_message(lambda: LineartAnimeDetector.from_pretrained(weights))

    @classmethod
    def random_detector(cls):
        from controlnet_aux.lineart_anime import LineartAnimeDetector, UnetGenerator

        norm_layer = functools.partial(torch.nn.InstanceNorm2d, affine=False, track_running_stats=False)
        return LineartAnimeDetector(UnetGenerator(3, 1, 8, 64, norm_layer=norm_layer, use_dropout=False).eval())


class OpenposePreprocessor(ControlPreprocessor):
    """OpenPose body (and optionally hand and face) skeletons (``body_pose_model.pth``, ``hand_pose_model.pth``, ``facenet.pth``)."""

    name = "openpose"

    def _load_detector(self, weights):
        from controlnet_aux.open_pose import OpenposeDetector

        return self._load_with_message(lambda: OpenposeDetector.from_pretrained(weights))

    @classmethod
    def random_detector(cls):
        from controlnet_aux.open_pose import OpenposeDetector
        from controlnet_aux.open_pose import face as face_module
        from controlnet_aux.open_pose.body import Body
        from controlnet_aux.open_pose.hand import Hand
        from controlnet_aux.open_pose.model import bodypose_model, handpose_model

        # Body/Hand/Face.__init__ read checkpoints; set the same attributes around fresh networks.
        body = Body.__new__(Body)
        body.model = bodypose_model().eval()
        hand = Hand.__new__(Hand)
        hand.model = handpose_model().eval()
        face = face_module.Face.__new__(face_module.Face)
        face.model = face_module.FaceNet().eval()
        face.inference_size = face_module.params["inference_img_size"]
        face.sigma = face_module.params["gaussian_sigma"]
        face.threshold = face_module.params["heatmap_peak_thresh"]
        return OpenposeDetector(body, hand, face)


class NormalBaePreprocessor(ControlPreprocessor):
    """Surface normals by NormalBae (``scannet.pt``)."""

    name = "normalbae"

    def _load_detector(self, weights):
        from controlnet_aux.normalbae import NormalBaeDetector

        with contextlib.redirect_stdout(sys.stderr):  # its encoder prints progress
            return self._load_with_message(lambda: NormalBaeDetector.from_pretrained(weights))

    @classmethod
    def random_detector(cls):
        from controlnet_aux.normalbae import NormalBaeDetector
        from controlnet_aux.normalbae.nets.NNET import NNET

        args = types.SimpleNamespace(mode="client", architecture="BN", pretrained="scannet", sampling_ratio=0.4, importance_ratio=0.7)
        with contextlib.redirect_stdout(sys.stderr):
            return NormalBaeDetector(NNET(args).eval())


class ZoePreprocessor(ControlPreprocessor):
    """ZoeDepth metric depth (``ZoeD_M12_N.pt``, BEiT-L backbone)."""

    name = "zoe"

    def _load_detector(self, weights):
        from controlnet_aux.zoe import ZoeDetector

        return self._load_with_message(lambda: ZoeDetector.from_pretrained(weights))

    @classmethod
    def random_detector(cls, midas_model_type: str = "DPT_BEiT_L_384", img_size: tuple[int, int] = (384, 512)):
        """Random ZoeDepth; a smaller ``midas_model_type`` (e.g. ``"DPT_SwinV2_T_256"``, ``img_size=(256, 256)``) for quick tests."""
        from controlnet_aux.zoe import ZoeDetector
        from controlnet_aux.zoe.zoedepth.models.zoedepth.zoedepth_v1 import ZoeDepth
        from controlnet_aux.zoe.zoedepth.utils.config import get_config

        config = get_config("zoedepth", "infer")
        config["midas_model_type"] = midas_model_type
        config["img_size"] = list(img_size)
        return ZoeDetector(ZoeDepth.build_from_config(config).eval())


class LeresPreprocessor(ControlPreprocessor):
    """LeReS relative depth (``res101.pth``; ``boost=True`` adds the pix2pix merge net ``latest_net_G.pth``)."""

    name = "leres"

    def _load_detector(self, weights):
        from controlnet_aux.leres import LeresDetector

        # LeresDetector parses its pix2pix options from sys.argv; give it an empty command line.
        saved = sys.argv
        sys.argv = sys.argv[:1]
        try:
            return self._load_with_message(lambda: LeresDetector.from_pretrained(weights))
        finally:
            sys.argv = saved

    @classmethod
    def random_detector(cls, backbone: str = "resnext101"):
        """Random LeReS; ``backbone="resnet50"`` (half the build time) for quick tests."""
        from controlnet_aux.leres import LeresDetector
        from controlnet_aux.leres.leres.multi_depth_model_woauxi import RelDepthModel

        # The pix2pix merge net is only used with boost=True.
        return LeresDetector(RelDepthModel(backbone=backbone).eval(), None)

    def detect(self, image):
        if self.params["boost"] and self.detector.pix2pixmodel is None:
            raise ValueError("Preprocessor 'leres' with `boost=True` needs the pix2pix merge net; build it with `weights=`.")
        return super().detect(image)


def load_preprocessor(
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> ControlPreprocessor:
    """The registered preprocessor ``name`` (see ``PREPROCESSORS.names()``), its detector loaded.

    Args:
        name (`str`): e.g. ``"canny"``, ``"midas"``, ``"openpose"``; unknown names raise ``KeyError`` with close matches.
        params (`Mapping`, *optional*): parameters replacing the registry defaults.
        weights (`str`, *optional*): Hub repo or local folder of the detector weights (``lllyasviel/Annotators``).
        device (`str`, *optional*): where the detector runs.
    """
    from ..registry import PREPROCESSORS

    return PREPROCESSORS.get(name)(params=params, weights=weights, device=device)
