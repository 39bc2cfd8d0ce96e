// /map, the risk map (一张图): every enterprise the user sees, placed by its registry
// `location`, coloured red/orange/yellow/blue by the server's risk rule with the colour's
// name beside it, the reason on hover, a click opening the enterprise. Grid areas are
// drawn from grids.toml. Tiles come from `[console] map_tiles_url` when set and
// reachable; otherwise the map is drawn on a plain background (offline centres).
//
// Data: GET /api/map, read again every REFRESH_MS (and on the tab becoming visible).

import * as L from "/static/vendor/leaflet/leaflet-src.esm.js";
import { api, el, initPage, t } from "/static/common.js";
import { riskBadge, riskReason } from "/static/risk.js";

const REFRESH_MS = 10_000;
const RISKS = ["red", "orange", "yellow", "blue"];
const RANK = { red: 0, orange: 1, yellow: 2, blue: 3 };
const TILE_FAILURES = 4; // tile errors before any tile loaded: the server is unreachable

const note = document.getElementById("map-note");
let map = null;
let tiles = null;
let gridLayer = null;
let markerLayer = null;
let fitted = false;

function say(text, kind = "info") {
  note.textContent = text;
  note.className = `hz-message ${kind}`;
}

function plainBackground(reason) {
  if (tiles) {
    map.removeLayer(tiles);
    tiles = null;
  }
  document.getElementById("map").classList.add("plain");
  say(reason);
}

function setupTiles(url) {
  if (!url) {
    plainBackground(t("map.plain"));
    return;
  }
  let loaded = 0;
  let failed = 0;
  tiles = L.tileLayer(url, { maxZoom: 18 });
  tiles.on("tileload", () => {
    loaded += 1;
  });
  tiles.on("tileerror", () => {
    failed += 1;
    if (loaded === 0 && failed >= TILE_FAILURES) plainBackground(t("map.unreachable"));
  });
  tiles.addTo(map);
  say("");
}

function markerNode(e) {
  const link = el("a", `risk-marker risk-${e.risk}`);
  link.href = `/enterprises/${encodeURIComponent(e.id)}`;
  link.dataset.enterprise = e.id;
  link.dataset.risk = e.risk;
  const reason = riskReason(e);
  link.title = `${e.name}: ${reason}`;
  link.setAttribute("aria-label", `${e.name}, ${t(`risk.${e.risk}`)}: ${reason}`);
  link.append(el("span", "risk-dot"), el("span", "risk-text", t(`risk.${e.risk}`)), el("span", "risk-name", e.name));
  return link;
}

function tooltipNode(e) {
  const box = el("div", "risk-tooltip");
  box.append(el("strong", "", e.name), el("div", "", riskReason(e)));
  return box;
}

function draw(data) {
  gridLayer.clearLayers();
  markerLayer.clearLayers();
  const bounds = L.latLngBounds([]);
  for (const g of data.grids) {
    if (!g.area.length) continue;
    const corners = g.area.map(([lon, lat]) => [lat, lon]);
    const poly = L.polygon(corners, { color: "#5f6b7a", weight: 1.5, fillColor: "#c9d3e0", fillOpacity: 0.35, dashArray: "4 3" });
    gridLayer.addLayer(poly);
    // the grid's name in its north-west corner, clear of the enterprises inside it
    const label = el("span", "grid-label", `${g.name || g.id} (${g.id})`);
    const icon = L.divIcon({ className: "grid-label-icon", html: label, iconSize: null, iconAnchor: [-6, -6] });
    gridLayer.addLayer(L.marker(poly.getBounds().getNorthWest(), { icon, interactive: false, keyboard: false, zIndexOffset: -1000 }));
    corners.forEach((c) => bounds.extend(c));
  }
  const list = document.getElementById("map-list");
  const unplaced = document.getElementById("unplaced");
  list.replaceChildren();
  unplaced.replaceChildren();
  const sorted = [...data.enterprises].sort((a, b) => RANK[a.risk] - RANK[b.risk] || a.id.localeCompare(b.id));
  for (const e of sorted) {
    const item = el("li", `risk-item risk-item-${e.risk}`);
    const link = el("a", "", `${e.name} (${e.id})`);
    link.href = `/enterprises/${encodeURIComponent(e.id)}`;
    item.append(riskBadge(e.risk), " ", link, el("div", "risk-reason", riskReason(e)));
    if (e.location) {
      const [lon, lat] = e.location;
      const icon = L.divIcon({ className: "risk-icon", html: markerNode(e), iconSize: null, iconAnchor: [9, 9] });
      const marker = L.marker([lat, lon], { icon, keyboard: false, riseOnHover: true, zIndexOffset: 100 * (3 - RANK[e.risk]) });
      marker.bindTooltip(tooltipNode(e), { direction: "top", offset: [0, -10] });
      markerLayer.addLayer(marker);
      bounds.extend([lat, lon]);
      list.append(item);
    } else {
      unplaced.append(item);
    }
  }
  document.getElementById("unplaced-title").hidden = unplaced.children.length === 0;
  if (!fitted && bounds.isValid()) {
    map.fitBounds(bounds, { padding: [30, 30], animate: false });
    fitted = true;
  }
  document.body.dataset.ready = "1";
}

async function refresh() {
  try {
    draw(await api("/api/map"));
  } catch (error) {
    say(`${t("map.failed")}: ${error.message}`, "error");
  }
}

function legend() {
  const ul = document.getElementById("legend");
  for (const risk of RISKS) {
    const li = el("li");
    li.append(riskBadge(risk), el("span", "legend-text", t(`risk.legend.${risk}`)));
    ul.append(li);
  }
}

async function main() {
  await initPage("map");
  legend();
  map = L.map("map", { zoomSnap: 0.25, attributionControl: false });
  map.setView([30.8, 121.47], 12); // replaced by the data's bounds at the first draw
  gridLayer = L.layerGroup().addTo(map);
  markerLayer = L.layerGroup().addTo(map);
  const first = await api("/api/map");
  setupTiles(first.tiles_url);
  draw(first);
  setInterval(() => {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
}

main().catch((error) => say(`${t("map.failed")}: ${error.message}`, "error"));
