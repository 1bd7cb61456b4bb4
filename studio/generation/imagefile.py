"""PNG files that carry their recipe: A1111 ``parameters``, our JSON recipe, and the IPTC disclosure.

- ``parameters``: A1111 text (tEXt, or iTXt when the text is not Latin-1), read by A1111, Civitai, ...
- ``brand_studio``: our full recipe as JSON (iTXt, UTF-8).
- ``XML:com.adobe.xmp``: an XMP packet with IPTC ``DigitalSourceType`` = trainedAlgorithmicMedia,
  the AI-disclosure property Google Merchant Center and Meta read.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image
from PIL.PngImagePlugin import PngInfo

RECIPE_KEY = "brand_studio"
XMP_KEY = "XML:com.adobe.xmp"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"

XMP_TEMPLATE = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/">
   <Iptc4xmpExt:DigitalSourceType>{source_type}</Iptc4xmpExt:DigitalSourceType>
   <xmp:CreatorTool>{tool}</xmp:CreatorTool>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def xmp_packet(source_type: str = TRAINED_ALGORITHMIC_MEDIA, tool: str = "Brand Studio") -> str:
    return XMP_TEMPLATE.format(source_type=escape(source_type), tool=escape(tool))


def encode_png(
    image: Image.Image, parameters: str, recipe: dict[str, Any], source_type: str = TRAINED_ALGORITHMIC_MEDIA
) -> bytes:
    """PNG bytes of ``image`` with its recipe chunks. Same inputs give the same bytes.

    ``source_type``: the IPTC digital source type (``COMPOSITE_WITH_TRAINED`` for an inpainted or
    outpainted photo)."""
    info = PngInfo()
    info.add_text("parameters", parameters)
    info.add_itxt(RECIPE_KEY, json.dumps(recipe, sort_keys=True, ensure_ascii=False))
    info.add_itxt(XMP_KEY, xmp_packet(source_type))
    buf = BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_png_metadata(data: bytes) -> dict[str, Any]:
    """The text chunks we write (and A1111's ``parameters``), read back from PNG bytes."""
    with Image.open(BytesIO(data), formats=["PNG"]) as img:
        text = dict(getattr(img, "text", {}))
    recipe = json.loads(text[RECIPE_KEY]) if RECIPE_KEY in text else None
    return {"parameters": text.get("parameters"), "recipe": recipe, "xmp": text.get(XMP_KEY)}
