// The shell alone, for a page with a classic script of its own (the overview):
// <body data-page="overview"> ... <script type="module" src="/static/shell.js"></script>
import { initPage } from "/static/common.js";

initPage(document.body.dataset.page || "");
