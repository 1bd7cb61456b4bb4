"""Mask painting for inpainting: brush strokes over the input image, returned as a grayscale PNG mask.

A Streamlit v2 component with inline JavaScript (no build step, no network). The image goes to the
browser as a PNG data URL drawn on a canvas (never as HTML). The painter returns a PNG data URL of
the mask at the image's own pixel size (white = repaint, black = keep); :func:`decode_mask` checks
and decodes it, and the page hands the bytes to ``Studio.upload_mask``, which validates them like any
upload. The mask-upload widget beside it is the fallback (and what AppTest drives).
"""

from __future__ import annotations

import base64
import binascii

import streamlit as st
from streamlit.components.v2 import component as v2_component

PREFIX = "data:image/png;base64,"
#: a 2048x2048 mask PNG is far below this; anything larger is not from our painter
MAX_DATA_URL = 8 * 1024 * 1024

_HTML = """
<div class="bs-mask">
  <div class="bs-tools">
    <label>Brush <input type="range" min="2" max="160" value="32" class="bs-size"></label>
    <label><input type="checkbox" class="bs-erase"> Erase</label>
    <button type="button" class="bs-clear">Clear</button>
    <button type="button" class="bs-use">Use this mask</button>
    <span class="bs-status"></span>
  </div>
  <canvas class="bs-canvas"></canvas>
</div>
"""

_CSS = """
.bs-mask { font-family: sans-serif; font-size: 14px; }
.bs-tools { display: flex; gap: 12px; align-items: center; margin-bottom: 6px; flex-wrap: wrap; }
.bs-canvas { border: 1px solid #999; cursor: crosshair; touch-action: none; max-width: 100%; }
.bs-tools button { padding: 2px 10px; }
"""

_JS = """
export default function(component) {
  const { data, setStateValue, parentElement } = component;
  const root = parentElement.querySelector('.bs-mask');
  const canvas = root.querySelector('.bs-canvas');
  const size = root.querySelector('.bs-size');
  const erase = root.querySelector('.bs-erase');
  const status = root.querySelector('.bs-status');
  const w = data.width, h = data.height;
  const scale = Math.min(1, data.display / w);
  canvas.width = Math.round(w * scale); canvas.height = Math.round(h * scale);
  const strokes = [];  // [{erase, r, points: [[x, y], ...]}] in image pixels
  const img = new Image();
  const redraw = () => {
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, canvas.width, canvas.height);
    if (img.complete) g.drawImage(img, 0, 0, canvas.width, canvas.height);
    const layer = document.createElement('canvas');
    layer.width = canvas.width; layer.height = canvas.height;
    paint(layer.getContext('2d'), scale, 'rgba(255,0,80,1)');
    g.globalAlpha = 0.5; g.drawImage(layer, 0, 0); g.globalAlpha = 1;
  };
  const paint = (g, s, colour) => {
    g.lineCap = 'round'; g.lineJoin = 'round';
    for (const st of strokes) {
      g.globalCompositeOperation = st.erase ? 'destination-out' : 'source-over';
      g.strokeStyle = colour; g.fillStyle = colour; g.lineWidth = st.r * 2 * s;
      g.beginPath();
      st.points.forEach(([x, y], i) => i ? g.lineTo(x * s, y * s) : g.moveTo(x * s, y * s));
      if (st.points.length === 1) { g.arc(st.points[0][0] * s, st.points[0][1] * s, st.r * s, 0, 2 * Math.PI); g.fill(); }
      else g.stroke();
    }
    g.globalCompositeOperation = 'source-over';
  };
  img.onload = redraw;
  img.src = data.image;
  let drawing = null;
  const at = (e) => {
    const b = canvas.getBoundingClientRect();
    return [(e.clientX - b.left) * (canvas.width / b.width) / scale, (e.clientY - b.top) * (canvas.height / b.height) / scale];
  };
  canvas.onpointerdown = (e) => {
    drawing = { erase: erase.checked, r: Number(size.value) / 2, points: [at(e)] };
    strokes.push(drawing); canvas.setPointerCapture(e.pointerId); redraw();
  };
  canvas.onpointermove = (e) => { if (drawing) { drawing.points.push(at(e)); redraw(); } };
  canvas.onpointerup = () => { drawing = null; };
  root.querySelector('.bs-clear').onclick = () => { strokes.length = 0; redraw(); status.textContent = ''; };
  root.querySelector('.bs-use').onclick = () => {
    const out = document.createElement('canvas');
    out.width = w; out.height = h;
    const g = out.getContext('2d');
    const white = document.createElement('canvas');
    white.width = w; white.height = h;
    paint(white.getContext('2d'), 1, '#ffffff');
    g.fillStyle = '#000000'; g.fillRect(0, 0, w, h); g.drawImage(white, 0, 0);
    setStateValue('mask', out.toDataURL('image/png'));
    status.textContent = 'Mask sent (' + strokes.length + ' strokes)';
  };
}
"""


@st.cache_resource
def _component() -> object:
    return v2_component("brand_studio_mask_painter", html=_HTML, css=_CSS, js=_JS)


def mask_painter(image_png: bytes, width: int, height: int, *, key: str, display: int = 512) -> str | None:
    """Show the painter over ``image_png``; the last mask the user sent, as a PNG data URL (or None)."""
    mount = _component()
    data = {"image": PREFIX + base64.b64encode(image_png).decode("ascii"), "width": width, "height": height,
            "display": display}  # fmt: skip
    result = mount(key=key, data=data, default={"mask": None}, on_mask_change=lambda: None)  # type: ignore[operator]
    value = getattr(result, "mask", None)
    return value if isinstance(value, str) else None


def decode_mask(data_url: str) -> bytes:
    """The PNG bytes of a painter data URL; ValueError for anything that is not one."""
    if len(data_url) > MAX_DATA_URL or not data_url.startswith(PREFIX):
        raise ValueError("the painted mask is not a PNG data URL from the painter")
    try:
        return base64.b64decode(data_url[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the painted mask is not valid base64") from None
