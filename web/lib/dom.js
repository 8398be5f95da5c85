// Building the views' DOM without innerHTML (every text is set as text).

/** `el('li', {class: 'x', dataset: {id: 3}, onclick}, child, …)`: children
 * are nodes or text; attributes that are null, undefined or false are left
 * out, as are such dataset entries. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else if (k === 'style') node.style.cssText = v;
    else if (k === 'dataset') {
      for (const [name, value] of Object.entries(v)) if (value !== undefined && value !== null) node.dataset[name] = value;
    } else node.setAttribute(k, v === true ? '' : v);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}
