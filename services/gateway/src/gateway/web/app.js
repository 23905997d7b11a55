// The voice page: push-to-talk and hands-free, live transcripts, conversations with spoken
// replies and barge-in, settings, and a health strip. Plain modules, no build step.

import { PageError, apiKey, request, setApiKey } from "./api.js";
import { Capture, PCM_RATE } from "./capture.js";
import { Player, decodeAudioChunk } from "./player.js";
import * as transcript from "./transcript.js";
import { FileTurn, LiveSession, errorFromEvent } from "./voice.js";

const $ = (id) => document.getElementById(id);
const HEALTH_INTERVAL_MS = 5000;
const PLAYBACK_REPORT_MS = 250; // how often the server hears how much of a reply has played
const SETTINGS_KEY = "voicestack.settings";
const TRANSCRIBE_PATH = "api/voice/ws/transcribe";
const CHAT_PATH = "api/voice/ws/chat";

// Counters the page keeps about itself: shown nowhere, read by tests and from the console.
const stats = {
  sentChunks: 0,
  sentBytes: 0,
  commits: 0,
  partials: 0,
  finals: 0,
  liveSessions: 0,
  fileTurns: 0,
  replies: 0,
  scheduledSamples: 0,
  scheduledSeconds: 0,
  playing: false,
  stoppedReplies: 0,
  lastHeardSeconds: null,
  replyAudioSeconds: 0, // what the server says it sent (reply.audio durations), to compare with the above
  errors: [],
  quietErrors: [], // server errors the page expects and does not show (a commit after the silence rule)
  events: {}, // server events received, by type
};

function count(event) {
  stats.events[event.type] = (stats.events[event.type] || 0) + 1;
}
window.voicestack = { stats, heardSeconds: () => player.heardSeconds() };

const state = {
  mode: "transcribe", // or "conversation"
  input: "ptt", // or "handsfree"
  pressed: false, // push-to-talk held
  listening: false, // hands-free on
  live: null, // live recognition offered by the gateway: null until known
  turn: null, // where captured audio goes: a LiveSession or a FileTurn
  chat: null, // the conversation socket
  conversationId: null,
  reply: null, // {element, id} of the assistant message being received
  playingElement: null, // the assistant message whose audio is scheduled
  playbackTimer: null,
  gatewayDown: false,
};

const player = new Player(stats);
const capture = new Capture({
  onChunk: (chunk) => {
    if (!state.turn) return;
    stats.sentChunks += 1;
    stats.sentBytes += chunk.byteLength;
    state.turn.sendAudio(chunk);
  },
  onLevel: (level) => {
    $("level").value = Math.min(1, level * 4);
  },
  forceRecorder: new URLSearchParams(location.search).has("recorder"),
});

// ---------------------------------------------------------------- messages

function showError(error) {
  const message = error instanceof PageError ? error.message : String((error && error.message) || error);
  stats.errors.push(error instanceof PageError ? error.code : "error");
  $("error-text").textContent = message;
  $("error").hidden = false;
  if (error instanceof PageError && (error.code === "invalid_api_key" || error.code === "unauthorized")) {
    $("api-key").setAttribute("aria-invalid", "true");
  }
}

function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

function setStatus(text) {
  $("status").textContent = text;
}

// ---------------------------------------------------------------- settings

function loadSettings() {
  try {
    return JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}");
  } catch {
    return {};
  }
}

function saveSettings() {
  const settings = {
    voice: $("voice").value,
    speed: $("speed").value,
    language: $("language").value,
    responder: $("responder").value,
    mode: state.mode,
    input: state.input,
  };
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
}

function applySettings() {
  const settings = loadSettings();
  if (settings.speed) $("speed").value = settings.speed;
  if (settings.language !== undefined) $("language").value = settings.language;
  $("speed-value").textContent = `${Number($("speed").value).toFixed(1)}×`;
  $("api-key").value = apiKey();
  for (const [name, value] of [
    ["mode", settings.mode],
    ["input", settings.input],
  ]) {
    const radio = document.querySelector(`input[name="${name}"][value="${value}"]`);
    if (radio) radio.checked = true;
  }
  setMode(document.querySelector('input[name="mode"]:checked').value);
  setInput(document.querySelector('input[name="input"]:checked').value);
}

const AUTO_VOICE = ""; // no voice sent: the server picks one of the language spoken

/** The voices, as `GET api/voice/voices` said them: {voices, default_voice, details}. */
let voiceCatalog = { voices: [], default_voice: "", details: [] };

function voiceCode(name) {
  const info = voiceCatalog.details.find((voice) => voice.id === name);
  if (info) return info.available === false ? null : info.lang_code;
  return name.includes("_") ? name[0] : null;
}

/** Kokoro's codes (each voice's first letter) for a language of the Language setting, as the voices'
 * details tag them: `en` → a, b. */
function kokoroCodes(language) {
  const tagged = voiceCatalog.details.filter((voice) => voice.language.split("-")[0].toLowerCase() === language);
  return [...new Set(tagged.map((voice) => voice.lang_code))];
}

/** The voice the Language setting picks: the default voice when it speaks it, else the first that does. */
function voiceForLanguage(language) {
  const codes = kokoroCodes(language);
  if (!codes.length) return AUTO_VOICE;
  const fallback = voiceCatalog.default_voice;
  if (fallback && codes.includes(voiceCode(fallback))) return fallback;
  for (const code of codes) {
    const found = voiceCatalog.voices.find((name) => voiceCode(name) === code);
    if (found) return found;
  }
  return AUTO_VOICE;
}

/** Voices grouped by language (optgroups), after an "Auto" choice that follows the language spoken. */
function voiceGroups(answer) {
  const details = new Map((answer.details || []).map((voice) => [voice.id, voice]));
  const groups = new Map();
  for (const name of answer.voices) {
    const info = details.get(name);
    const label = info ? info.language_name || info.language : "Other";
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push({ name, info });
  }
  const elements = [new Option("Auto: a voice of the language spoken", AUTO_VOICE)];
  for (const [label, voices] of groups) {
    const group = document.createElement("optgroup");
    group.label = label;
    const first = voices[0].info;
    if (first) group.dataset.langCode = first.lang_code;
    for (const { name, info } of voices) {
      const gender = info && info.gender ? `, ${info.gender}` : "";
      const text = `${name}${gender}${name === answer.default_voice ? " (default)" : ""}`;
      const option = new Option(text, name);
      if (info) {
        option.dataset.language = info.language;
        if (info.available === false) {
          option.disabled = true;
          option.title = info.reason || "Not available on this server";
        }
      }
      group.append(option);
    }
    elements.push(group);
  }
  return elements;
}

async function loadVoices() {
  const saved = loadSettings().voice;
  try {
    const answer = await request("api/voice/voices");
    voiceCatalog = { voices: answer.voices || [], default_voice: answer.default_voice, details: answer.details || [] };
    const select = $("voice");
    select.replaceChildren(...voiceGroups(answer));
    const offered = typeof saved === "string" && (saved === AUTO_VOICE || answer.voices.includes(saved));
    select.value = offered ? saved : voiceForLanguage($("language").value);
  } catch (error) {
    showError(error);
  }
}

function voiceOptions() {
  const options = { speed: Number($("speed").value) };
  if ($("voice").value) options.voice = $("voice").value;
  if ($("language").value) options.language = $("language").value;
  return options;
}

// ---------------------------------------------------------------- health

function setHealth(service, level, text) {
  const item = document.querySelector(`#health [data-service="${service}"]`);
  if (!item) return;
  item.hidden = false;
  item.dataset.level = level;
  item.querySelector(".state").textContent = text;
}

async function refreshHealth() {
  let health;
  try {
    const response = await fetch(new URL("api/voice/health", document.baseURI), { cache: "no-store" });
    health = await response.json();
  } catch {
    setHealth("gateway", "down", "unreachable");
    setHealth("stt", "unknown", "unknown");
    setHealth("tts", "unknown", "unknown");
    if (!state.gatewayDown) showError(new PageError("unreachable", "The gateway is unreachable. Is it running?"));
    state.gatewayDown = true;
    return;
  }
  if (state.gatewayDown) {
    state.gatewayDown = false;
    clearError();
    loadVoices();
  }
  setHealth("gateway", "up", "up");
  setHealth("stt", health.sst_healthy ? "up" : "down", health.sst_healthy ? "up" : "down");
  setHealth("tts", health.tts_healthy ? "up" : "down", health.tts_healthy ? "up" : "down");
  if (health.events && health.events.enabled) {
    const pending = health.events.pending;
    setHealth("events", pending > 100 ? "degraded" : "up", pending ? `${pending} waiting` : "up");
  }
  if (typeof health.conversation_healthy === "boolean") {
    setHealth("conversation", health.conversation_healthy ? "up" : "down", health.conversation_healthy ? "up" : "down");
  }
}

// ---------------------------------------------------------------- transcript

function showPartial(event) {
  transcript.showPartial(document, event);
}

function clearPartial() {
  transcript.clearPartial(document);
}

function addFinal(text, language) {
  if (transcript.addFinal($("finals"), text, language)) stats.finals += 1;
}

/** The language a final was heard in, when the page asked the server to detect it. */
function detectedLanguage(event) {
  return $("language").value === "" && event.language ? event.language : null;
}

// Errors that follow from a race, not a fault: on release the page commits, but the server's silence
// rule may have ended the utterance a moment before (its final is on its way, or already shown).
const QUIET_ERRORS = new Set(["nothing_to_commit"]);

function showServerError(event) {
  const error = errorFromEvent(event);
  if (QUIET_ERRORS.has(error.code)) {
    stats.quietErrors.push(error.code);
    return;
  }
  showError(error);
}

function transcriptEvent(event) {
  count(event);
  switch (event.type) {
    case "speech_started":
      setStatus("Hearing you…");
      break;
    case "partial":
      stats.partials += 1;
      showPartial(event);
      break;
    case "speech_stopped":
      setStatus("Transcribing…");
      break;
    case "final":
      addFinal(event.text, detectedLanguage(event));
      setStatus(state.listening ? "Listening…" : "Ready.");
      break;
    case "error":
      showServerError(event);
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------- transcription mode

function transcribeSession() {
  const start = { type: "start", ...capture.format, partials: true };
  if ($("language").value) start.language = $("language").value;
  const session = new LiveSession(TRANSCRIBE_PATH, {
    start,
    readyType: "ready",
    onEvent: transcriptEvent,
    onEnd: (error) => {
      if (error && error.code !== "unavailable") showError(error);
      if (state.turn === session) state.turn = null;
      if (state.listening && !state.pressed) stopHandsFree();
    },
  });
  return session;
}

/** Start sending audio to a live session, or to a file upload when live recognition is missing. */
async function startTranscribeTurn() {
  if (state.live !== false) {
    const session = transcribeSession();
    state.turn = session;
    capture.start();
    try {
      await session.open();
      state.live = true;
      stats.liveSessions += 1;
      return;
    } catch (error) {
      if (error.code !== "unavailable" || state.live === true) {
        await capture.stop();
        state.turn = null;
        throw error;
      }
      state.live = false;
    }
    // No live recognition here: what was captured so far goes into a file upload.
    const turn = new FileTurn(capture.format);
    for (const chunk of session.queue) turn.sendAudio(chunk);
    state.turn = turn;
    return;
  }
  state.turn = new FileTurn(capture.format);
  capture.start();
}

async function endTranscribeTurn() {
  await capture.stop();
  const turn = state.turn;
  if (turn instanceof LiveSession) {
    stats.commits += 1;
    turn.send({ type: "commit" });
    turn.send({ type: "stop" });
    setStatus("Transcribing…");
    return;
  }
  state.turn = null;
  if (!(turn instanceof FileTurn) || !turn.sentBytes) {
    setStatus("Ready.");
    return;
  }
  if (state.input === "handsfree") {
    showError(new PageError("no_live", "Hands-free needs live recognition, which this gateway does not offer."));
  }
  stats.fileTurns += 1;
  setStatus("Transcribing…");
  try {
    const answer = await turn.finish($("language").value);
    addFinal(answer.text);
    setStatus("Ready.");
  } catch (error) {
    setStatus("Ready.");
    showError(error);
  }
}

// ---------------------------------------------------------------- conversation mode

function chatEvent(event) {
  count(event);
  switch (event.type) {
    case "conversation.started":
      setConversation(event.conversation_id, event.title);
      loadConversations();
      break;
    case "reply.started":
      replyMessage(event);
      break;
    case "speech_started":
      setStatus("Hearing you…");
      if (state.reply || player.playing) bargeIn("speech");
      break;
    case "partial":
      stats.partials += 1;
      showPartial(event);
      break;
    case "speech_stopped":
      setStatus("Thinking…");
      break;
    case "final":
      clearPartial();
      if (event.text && event.text.trim()) {
        stats.finals += 1;
        const item = addMessage("user", event.text.trim());
        const language = detectedLanguage(event);
        if (language) transcript.tagLanguage(item, language);
        setStatus("Thinking…");
      } else {
        setStatus(state.listening ? "Listening…" : "Ready.");
      }
      break;
    case "reply.text.delta":
      replyMessage(event).append(event.text ?? event.delta ?? "");
      break;
    case "tool.call":
    case "tool.result":
      showToolCall(replyMessage(event).element, event);
      break;
    case "reply.audio":
      if (event.voice && state.reply) state.reply.element.dataset.voice = event.voice;
      playReplyAudio(event);
      break;
    case "reply.done":
      stats.replies += 1;
      if (event.text && state.reply) state.reply.element.querySelector(".text").textContent = event.text;
      state.reply = null;
      if (!player.playing) afterReply();
      setStatus(state.listening ? "Listening…" : "Ready.");
      break;
    case "reply.cancelled": {
      // The server stopped the reply (it heard you speak, or was asked to): stop playing it too.
      if (player.playing) bargeIn("speech", false);
      const item = event.message_id && $("messages").querySelector(`li[data-message-id="${CSS.escape(event.message_id)}"]`);
      for (const element of new Set([item, state.reply && state.reply.element])) {
        if (element) markInterrupted(element, event.heard_text);
      }
      state.reply = null;
      afterReply();
      break;
    }
    case "error":
      showServerError(event);
      break;
    default:
      break;
  }
}

/** Mark a reply interrupted; the words the user did not hear are greyed. */
function markInterrupted(element, heardText) {
  element.classList.add("cancelled");
  const text = element.querySelector(".text");
  const full = text.textContent;
  if (typeof heardText !== "string" || !full.startsWith(heardText) || full === heardText) return;
  const unheard = document.createElement("span");
  unheard.className = "unheard";
  unheard.textContent = full.slice(heardText.length);
  text.replaceChildren(heardText, unheard);
}

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You: " : "Assistant: ";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(who, body);
  $("messages").append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}

function replyMessage(event) {
  if (!state.reply) {
    player.reset();
    state.reply = { element: addMessage("assistant", ""), id: event.message_id || null };
    if (event.message_id) state.reply.element.dataset.messageId = event.message_id;
    $("playback").textContent = "";
    $("stop-reply").disabled = false;
  }
  const text = state.reply.element.querySelector(".text");
  return { element: state.reply.element, append: (delta) => (text.textContent += delta) };
}

/** A tool call of a reply, as a line under it: its name, arguments, and how it ended (updated in place). */
function showToolCall(element, call) {
  let list = element.querySelector(".tools");
  if (!list) {
    list = document.createElement("ul");
    list.className = "tools";
    list.setAttribute("aria-label", "Tools the assistant called");
    element.append(list);
  }
  let line = list.querySelector(`li[data-call-id="${CSS.escape(call.call_id)}"]`);
  if (!line) {
    line = document.createElement("li");
    line.dataset.callId = call.call_id;
    list.append(line);
  }
  line.dataset.status = call.status;
  const outcome = call.status === "running" || call.status === "pending" ? "…" : ` → ${call.status}`;
  const result = call.result ? `: ${call.result.slice(0, 160)}` : "";
  line.textContent = `${call.name}(${call.arguments})${outcome}${result}`;
}

function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function playReplyAudio(event) {
  replyMessage(event);
  const data = event.audio_base64;
  if (!data) return;
  const { samples, rate } = decodeAudioChunk(base64Bytes(data), event.sample_rate || 24000);
  stats.replyAudioSeconds += event.duration_seconds || 0;
  player.enqueue(samples, rate);
  state.playingElement = state.reply.element;
  $("stop-reply").disabled = false;
  $("playback").textContent = "Playing the reply…";
  if (!state.playbackTimer) state.playbackTimer = setInterval(reportPlayback, PLAYBACK_REPORT_MS);
}

function reportPlayback() {
  if (!state.chat || !player.playing) return;
  state.chat.send({ type: "playback", position: player.heardSeconds() });
}

function afterReply() {
  clearInterval(state.playbackTimer);
  state.playbackTimer = null;
  $("stop-reply").disabled = true;
}

player.onIdle = () => {
  if (state.chat) state.chat.send({ type: "playback", position: player.heardSeconds() });
  if (!state.reply) {
    state.playingElement = null;
    $("playback").textContent = "";
    afterReply();
  }
};

/** Stop the reply now: silence it, tell the server how much was heard, and cancel the rest. */
function bargeIn(why, tell = true) {
  const scheduled = player.scheduledSeconds();
  const heard = player.stop();
  stats.stoppedReplies += 1;
  stats.lastHeardSeconds = heard;
  if (state.chat && tell) {
    state.chat.send({ type: "playback", position: heard });
    state.chat.send({ type: "cancel" });
  }
  const element = (state.reply && state.reply.element) || state.playingElement;
  if (element) element.classList.add("cancelled");
  state.reply = null;
  state.playingElement = null;
  afterReply();
  const of = scheduled ? ` of ${scheduled.toFixed(1)} s` : "";
  $("playback").textContent =
    why === "speech" ? `Interrupted: you heard ${heard.toFixed(1)} s${of}.` : `Stopped: you heard ${heard.toFixed(1)} s${of}.`;
}

function setConversation(id, title) {
  state.conversationId = id;
  $("conversation-title").textContent = title ? `— ${title}` : `— ${id.slice(0, 8)}`;
}

/** The open chat, or a new one and the promise of its opening (audio sent meanwhile waits in its queue). */
function chatSession() {
  if (state.chat && state.chat.isOpen) return { chat: state.chat, opened: Promise.resolve(state.chat) };
  if (capture.kind === "recorder") {
    throw new PageError("no_pcm", "Conversations need an AudioWorklet (16 kHz PCM), which this browser lacks.");
  }
  // Reply audio as one WAV per sentence; our audio as 16 kHz PCM16 mono binary frames.
  const start = { type: "start_conversation", ...voiceOptions(), format: "wav", sample_rate: PCM_RATE };
  if (state.conversationId) start.conversation_id = state.conversationId;
  if (!$("responder").hidden && $("responder").value) start.responder = { name: $("responder").value };
  const chat = new LiveSession(CHAT_PATH, {
    start,
    readyType: "conversation.started",
    onEvent: chatEvent,
    onEnd: (error) => {
      if (error) showError(error);
      if (state.chat === chat) state.chat = null;
      if (state.turn === chat) state.turn = null;
    },
  });
  state.chat = chat;
  const opened = chat.open().then(() => {
    stats.liveSessions += 1;
    return chat;
  });
  return { chat, opened };
}

async function openChat() {
  return chatSession().opened;
}

async function startConversationTurn() {
  if (state.reply || player.playing) bargeIn("button");
  // Capture starts before the chat is ready: words said while it opens wait in its queue, not lost.
  const { chat, opened } = chatSession();
  state.turn = chat;
  capture.start();
  await opened;
}

async function endConversationTurn() {
  await capture.stop();
  const chat = state.turn;
  state.turn = null;
  if (chat instanceof LiveSession) {
    stats.commits += 1;
    chat.send({ type: "commit" });
    setStatus("Ready.");
  }
}

/** Offer a responder choice only where the server allows more than one (GET api/voice/responders). */
async function loadResponders() {
  let answer;
  try {
    answer = await request("api/voice/responders");
  } catch {
    return; // no choice offered here: the server's default answers
  }
  const allowed = (answer && answer.allowed) || [];
  const select = $("responder");
  const show = allowed.length > 1;
  select.hidden = !show;
  $("responder-label").hidden = !show;
  if (!show) return;
  const saved = loadSettings().responder;
  select.replaceChildren(...allowed.map((name) => new Option(name === answer.default ? `${name} (default)` : name, name)));
  select.value = allowed.includes(saved) ? saved : answer.default;
}

async function loadConversations() {
  let answer;
  try {
    answer = await request("api/conversations");
  } catch (error) {
    if (error.code !== "http_404") showError(error);
    return;
  }
  const list = $("conversations");
  list.replaceChildren();
  const items = Array.isArray(answer) ? answer : answer.conversations || answer.items || [];
  for (const conversation of items) {
    const id = conversation.id || conversation.conversation_id;
    const when = conversation.updated_at || conversation.created_at;
    const label =
      conversation.title || (when ? new Date(when).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : id);
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = label;
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = "Continue";
    open.setAttribute("aria-label", `Continue the conversation ${label}`);
    open.addEventListener("click", () => continueConversation(id, label));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "quiet";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete the conversation ${label}`);
    remove.addEventListener("click", () => deleteConversation(id));
    if (id === state.conversationId) item.setAttribute("aria-current", "true");
    item.append(name, open, remove);
    list.append(item);
  }
}

async function continueConversation(id, label) {
  try {
    const answer = await request(`api/conversations/${encodeURIComponent(id)}`);
    if (state.chat) state.chat.close();
    state.chat = null;
    $("messages").replaceChildren();
    for (const message of answer.messages || []) {
      const interrupted = message.interrupted && message.generated_text;
      const item = addMessage(message.role === "user" ? "user" : "assistant", interrupted || message.text || "");
      if (message.interrupted) markInterrupted(item, message.text);
      for (const call of message.tool_calls || []) showToolCall(item, call);
    }
    setConversation(id, label);
    setStatus("Continuing that conversation: hold to talk.");
  } catch (error) {
    showError(error);
  }
}

async function deleteConversation(id) {
  try {
    await request(`api/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
    if (state.conversationId === id) newConversation();
    await loadConversations();
  } catch (error) {
    showError(error);
  }
}

function newConversation() {
  if (state.chat) state.chat.close();
  state.chat = null;
  state.conversationId = null;
  $("messages").replaceChildren();
  $("conversation-title").textContent = "";
}

// ---------------------------------------------------------------- talking

async function press() {
  if (state.pressed) return;
  state.pressed = true;
  $("talk").setAttribute("aria-pressed", "true");
  $("talk").classList.add("active");
  clearError();
  player.unlock(); // inside the gesture, so reply audio may play later
  try {
    await capture.open();
    $("capture-kind").textContent = capture.kind === "worklet" ? "16 kHz PCM" : "WebM/Opus";
    if (!state.pressed) return; // released while the microphone opened
    setStatus("Listening… let go when you are done.");
    if (state.mode === "conversation") await startConversationTurn();
    else await startTranscribeTurn();
  } catch (error) {
    showError(error);
    release(true);
  }
}

async function release(failed = false) {
  if (!state.pressed) return;
  state.pressed = false;
  $("talk").setAttribute("aria-pressed", "false");
  $("talk").classList.remove("active");
  if (failed) {
    await capture.stop().catch(() => {});
    state.turn = null;
    setStatus("Ready.");
    return;
  }
  if (state.mode === "conversation") await endConversationTurn();
  else await endTranscribeTurn();
}

async function startHandsFree() {
  clearError();
  player.unlock();
  try {
    await capture.open();
    $("capture-kind").textContent = capture.kind === "worklet" ? "16 kHz PCM" : "WebM/Opus";
    state.listening = true;
    state.pressed = false;
    updateTalkButton();
    if (state.mode === "conversation") {
      await startConversationTurn();
    } else {
      if (state.live === false) throw new PageError("no_live", "Hands-free needs live recognition, which this gateway does not offer.");
      await startTranscribeTurn();
      if (!(state.turn instanceof LiveSession)) {
        throw new PageError("no_live", "Hands-free needs live recognition, which this gateway does not offer.");
      }
    }
    setStatus("Listening… speak; a pause ends what you said.");
  } catch (error) {
    showError(error);
    await stopHandsFree();
  }
}

async function stopHandsFree() {
  const wasListening = state.listening;
  state.listening = false;
  updateTalkButton();
  await capture.stop().catch(() => {});
  const turn = state.turn;
  state.turn = null;
  if (turn instanceof LiveSession && turn !== state.chat) turn.send({ type: "stop" });
  if (turn instanceof LiveSession && turn === state.chat) turn.send({ type: "commit" });
  if (wasListening) setStatus("Ready.");
}

function updateTalkButton() {
  const button = $("talk");
  if (state.input === "handsfree") {
    button.textContent = state.listening ? "Stop listening" : "Start listening";
    button.setAttribute("aria-pressed", String(state.listening));
    button.classList.toggle("active", state.listening);
    $("talk-hint").textContent = "Press the space bar (or this button) to start or stop; pauses end each utterance.";
  } else {
    button.textContent = "Hold to talk";
    button.setAttribute("aria-pressed", String(state.pressed));
    $("talk-hint").textContent = "Hold the space bar (or this button) while you speak, then let go.";
  }
}

function setMode(mode) {
  if (state.listening) stopHandsFree();
  state.mode = mode;
  $("conversation").hidden = mode !== "conversation";
  $("transcript").hidden = mode === "conversation";
  if (mode === "conversation") {
    loadConversations();
    loadResponders();
  }
  else if (state.chat) {
    state.chat.close();
    state.chat = null;
  }
}

function setInput(input) {
  if (state.listening) stopHandsFree();
  state.input = input;
  updateTalkButton();
}

/** Whether Space belongs to the focused control (typing, or pressing another button) rather than to talking. */
function spaceTaken(target) {
  if (!(target instanceof HTMLElement) || target === $("talk")) return false;
  if (target.isContentEditable || /^(SELECT|TEXTAREA|BUTTON|A|SUMMARY)$/.test(target.tagName)) return true;
  return target instanceof HTMLInputElement && !["radio", "range"].includes(target.type);
}

function wire() {
  const talk = $("talk");
  talk.addEventListener("pointerdown", (event) => {
    if (state.input !== "ptt" || event.button !== 0) return;
    talk.setPointerCapture(event.pointerId);
    press();
  });
  talk.addEventListener("pointerup", () => state.input === "ptt" && release());
  talk.addEventListener("pointercancel", () => state.input === "ptt" && release());
  talk.addEventListener("click", (event) => {
    if (state.input !== "handsfree" || event.detail === 0) return; // keyboard clicks come as keys
    state.listening ? stopHandsFree() : startHandsFree();
  });
  // Space (or Enter on the focused button) talks, unless the user is typing in a field.
  document.addEventListener("keydown", (event) => {
    const isSpace = event.code === "Space" || event.key === " ";
    const isEnter = event.key === "Enter" && document.activeElement === talk;
    if ((!isSpace && !isEnter) || spaceTaken(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault();
    if (event.repeat) return;
    if (state.input === "ptt") press();
    else state.listening ? stopHandsFree() : startHandsFree();
  });
  document.addEventListener("keyup", (event) => {
    const isSpace = event.code === "Space" || event.key === " ";
    const isEnter = event.key === "Enter";
    if ((!isSpace && !isEnter) || state.input !== "ptt" || !state.pressed) return;
    event.preventDefault();
    release();
  });
  window.addEventListener("blur", () => state.input === "ptt" && release());

  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => {
      setMode(radio.value);
      saveSettings();
    });
  }
  for (const radio of document.querySelectorAll('input[name="input"]')) {
    radio.addEventListener("change", () => {
      setInput(radio.value);
      saveSettings();
    });
  }
  $("speed").addEventListener("input", () => {
    $("speed-value").textContent = `${Number($("speed").value).toFixed(1)}×`;
  });
  // The Language setting drives recognition (the language sent) and the reply voice (one that speaks it).
  $("language").addEventListener("change", () => {
    if (voiceCatalog.voices.length) $("voice").value = voiceForLanguage($("language").value);
  });
  for (const id of ["voice", "speed", "language", "responder"]) {
    $(id).addEventListener("change", () => {
      saveSettings();
      // A conversation socket keeps the settings it started with: the next turn opens a new one.
      if (state.chat && !state.reply && !player.playing) {
        state.chat.close();
        state.chat = null;
      }
    });
  }
  $("settings").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey($("api-key").value.trim());
    $("api-key").removeAttribute("aria-invalid");
    clearError();
    if (state.chat) state.chat.close();
    state.chat = null;
    setStatus(apiKey() ? "Key saved in this browser." : "Key forgotten.");
    loadVoices();
    if (state.mode === "conversation") loadConversations();
  });
  $("forget-key").addEventListener("click", () => {
    $("api-key").value = "";
    setApiKey("");
    setStatus("Key forgotten.");
  });
  $("error-close").addEventListener("click", clearError);
  $("clear-transcript").addEventListener("click", () => {
    $("finals").replaceChildren();
    clearPartial();
  });
  $("stop-reply").addEventListener("click", () => bargeIn("button"));
  $("new-conversation").addEventListener("click", newConversation);
  $("say").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("say-text").value.trim();
    if (!text) return;
    clearError();
    player.unlock();
    if (state.reply || player.playing) bargeIn("button");
    try {
      const chat = await openChat();
      chat.send({ type: "text", text });
      addMessage("user", text);
      $("say-text").value = "";
      setStatus("Thinking…");
    } catch (error) {
      showError(error);
    }
  });
  $("refresh-conversations").addEventListener("click", loadConversations);
}

wire();
applySettings();
refreshHealth();
setInterval(refreshHealth, HEALTH_INTERVAL_MS);
loadVoices();
