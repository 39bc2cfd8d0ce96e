// /installations/{eid}/{iid}: one installation's live values, and the trend of any point.
import { startPlantPage } from "/static/plant.js";

const [, , eid, iid] = location.pathname.split("/").map(decodeURIComponent);
startPlantPage({ page: "installation", eid, iid });
