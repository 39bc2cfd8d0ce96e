// /enterprises/{eid}: every installation's live values, and the trend of any point.
import { startPlantPage } from "/static/plant.js";

const [, , eid] = location.pathname.split("/").map(decodeURIComponent);
startPlantPage({ page: "enterprise", eid });
