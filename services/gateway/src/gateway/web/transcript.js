// Rendering live transcripts: the partial line (stable words, then the tail that may still change)
// and the list of finals. Kept apart from the page so the browser tests can drive it directly.

/** The stable and unstable parts of a `partial` event, joined the way they are shown. */
export function partialParts(event) {
  const stable = (event.stable ?? "").trim();
  let unstable = (event.unstable ?? "").trim();
  if (event.stable === undefined && event.unstable === undefined) unstable = (event.text ?? "").trim();
  return { stable, unstable: stable && unstable ? ` ${unstable}` : unstable };
}

/** Show a partial on every partial line of the page. */
export function showPartial(root, event) {
  const { stable, unstable } = partialParts(event);
  for (const line of root.querySelectorAll(".partial")) {
    line.querySelector(".stable").textContent = stable;
    line.querySelector(".unstable").textContent = unstable;
  }
}

export function clearPartial(root) {
  for (const line of root.querySelectorAll(".partial")) {
    line.querySelector(".stable").textContent = "";
    line.querySelector(".unstable").textContent = "";
  }
}

/** Append a final to a list (the live region), tagged with its language when given; false for an empty one. */
export function addFinal(list, text, language) {
  clearPartial(list.ownerDocument);
  if (!text || !text.trim()) return false;
  const item = list.ownerDocument.createElement("li");
  item.textContent = text.trim();
  if (language) tagLanguage(item, language);
  list.append(item);
  item.scrollIntoView({ block: "nearest" });
  return true;
}

/** Say which language a final was heard in (the page's "Detect" setting). */
export function tagLanguage(item, language) {
  const tag = item.ownerDocument.createElement("span");
  tag.className = "lang";
  tag.lang = "en";
  tag.textContent = language;
  tag.title = `Detected language: ${language}`;
  item.dataset.language = language;
  item.append(" ", tag);
}
