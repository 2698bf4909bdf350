// The patient report page's 3D heart model in <model-viewer> (@google/model-viewer from
// npm, bundled by `make static` into static/patient/model.js; no CDN). Only this element:
// the page's still picture (its poster slot) shows until the model has loaded, and stays
// without WebGL; without JavaScript the element is unknown and the still shows as a plain image.
import '@google/model-viewer';
