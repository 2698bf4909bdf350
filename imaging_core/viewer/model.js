// The 3D model (GLB) of the study's calcified plaque in <model-viewer>
// (@google/model-viewer from npm, bundled by `make static`; no CDN). Loaded only
// by pages that show a model: it defines the <model-viewer> element.
import '@google/model-viewer';
