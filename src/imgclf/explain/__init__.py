"""Why did the model decide? Attribution maps, overlays, and checks that the maps mean something.

``explain(model, images, method=...)`` works on any classifier taking normalised ``(B, 3, H, W)`` input and
returns an :class:`Attribution` of ``(B, H, W)`` maps in [0, 1]. Methods: Grad-CAM and Grad-CAM++ (on the
model's automatic target layer; ViT tokens reshaped to the patch grid), SmoothGrad, Integrated Gradients,
occlusion, LIME and GradientSHAP (through Captum, the ``imgclf[explain]`` extra). ``deletion_insertion`` scores
faithfulness, ``randomization_check`` and ``cascading_randomization`` run the model-randomisation sanity check
(an empty map fails it), and ``overlay`` / ``save_side_by_side`` / ``save_gallery`` draw the maps.
"""

from imgclf.explain._explain import METHODS, explain, normalize_maps
from imgclf.explain._faithfulness import deletion_insertion
from imgclf.explain._files import ExplainedImage, ExplainReport, explain_files
from imgclf.explain._overlay import GalleryItem, overlay, save_gallery, save_side_by_side, to_display_image
from imgclf.explain._result import Attribution, Faithfulness, SanityResult
from imgclf.explain._sanity import cascading_randomization, randomization_check, spearman
from imgclf.utils import publish

__all__ = [
    "ExplainReport",
    "ExplainedImage",
    "explain_files",
    "METHODS",
    "Attribution",
    "Faithfulness",
    "GalleryItem",
    "SanityResult",
    "cascading_randomization",
    "deletion_insertion",
    "explain",
    "normalize_maps",
    "overlay",
    "randomization_check",
    "save_gallery",
    "save_side_by_side",
    "spearman",
    "to_display_image",
]

publish(__name__, globals(), __all__)
