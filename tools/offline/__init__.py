"""The offline pack: the embedded default backends, with weights that ship inside registry packages.

Every backend loads its model lazily on first use (thread-safe), verifies the packaged weights'
sha256 first (``vpagent.tools.weights``) and describes itself with ``info()``. Stand-ins for
roles that no packaged model can serve (matcher, segmenter, depth, captioner, VQA) say so in
``info()``.

===================  ==========================  ===========================================
role                 backend name                class
===================  ==========================  ===========================================
detector             ssd-coco                    :class:`SSDCocoDetector`
matcher (stand-in)   classifier-minilm           :class:`ClassifierMatcher`
segmenter (st.-in)   grabcut                     :class:`GrabCutSegmenter`
ocr                  rapidocr                    :class:`RapidOCRReader`
faces                haar                        :class:`HaarFaceDetector`
depth (stand-in)     vertical-position           :class:`VerticalPositionDepth`
captioner (st.-in)   scene-description           :class:`SceneCaptioner`
vqa (stand-in)       scene-description-llm       :class:`SceneVQA` (needs an ``llm`` callable)
===================  ==========================  ===========================================

``vpagent.tools.registry`` maps the backend names to these classes.
"""

from vpagent.tools.offline.classifier import EfficientNetClassifier
from vpagent.tools.offline.coco_names import COCO_CLASSES, CocoNameMapper
from vpagent.tools.offline.colors import color_distribution, name_color
from vpagent.tools.offline.depth import VerticalPositionDepth
from vpagent.tools.offline.detector import SSDCocoDetector
from vpagent.tools.offline.faces import HaarFaceDetector
from vpagent.tools.offline.matcher import ClassifierMatcher
from vpagent.tools.offline.ocr import RapidOCRReader
from vpagent.tools.offline.scene import SceneCaptioner, SceneVQA, describe_scene
from vpagent.tools.offline.segmenter import GrabCutSegmenter
from vpagent.tools.offline.text_embed import MiniLMEmbedder, shared_embedder

__all__ = [
    "COCO_CLASSES",
    "ClassifierMatcher",
    "CocoNameMapper",
    "EfficientNetClassifier",
    "GrabCutSegmenter",
    "HaarFaceDetector",
    "MiniLMEmbedder",
    "RapidOCRReader",
    "SSDCocoDetector",
    "SceneCaptioner",
    "SceneVQA",
    "VerticalPositionDepth",
    "color_distribution",
    "describe_scene",
    "name_color",
    "shared_embedder",
]
