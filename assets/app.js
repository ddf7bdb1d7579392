// whatsapp-api dashboard behaviour: small enhancements, and the live inbox,
// conversation and pairing pages (from the event stream). Every page works
// without them; the CSP allows this file and nothing inline.
(function () {
  'use strict';

  // Inbox: "Select all" ticks every message checkbox on the page.
  var selectAll = function () {
    var all = document.getElementById('select-all');
    if (all) {
      all.parentNode.hidden = false;
      all.addEventListener('change', function () {
        document.querySelectorAll('input[name="id"][type="checkbox"]').forEach(function (box) {
          box.checked = all.checked;
        });
      });
    }
  };
  selectAll();

  // The inbox's filters unfold by themselves on a wide screen.
  var filters = document.getElementById('filters');
  if (filters && window.matchMedia('(min-width: 48rem)').matches) {
    filters.open = true;
  }

  // Times are sent in UTC; show them in this browser's time zone (today's
  // as the time of day), keeping the UTC text as the title.
  var two = function (n) { return (n < 10 ? '0' : '') + n; };
  var day = function (d) {
    return d.getFullYear() + '-' + two(d.getMonth() + 1) + '-' + two(d.getDate());
  };
  var localTimes = function (root) {
    var today = day(new Date());
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d.getTime())) {
        return;
      }
      var clock = two(d.getHours()) + ':' + two(d.getMinutes());
      t.title = t.textContent;
      t.textContent = day(d) === today ? clock : day(d) + ' ' + clock;
    });
  };
  localTimes(document);

  // Destructive buttons ask first.
  document.querySelectorAll('[data-confirm]').forEach(function (el) {
    el.addEventListener('click', function (event) {
      if (!window.confirm(el.getAttribute('data-confirm'))) {
        event.preventDefault();
      }
    });
  });

  // Live pages: the event stream (GET /api/v1/events) says when something
  // changed; the page is then fetched again and only its changing parts
  // are swapped in, as the server renders them (so every string is escaped
  // in one place, the server). Without script, a reload does the same.
  var live = function (from, names, wanted, parts, after) {
    var busy = false;
    var again = false;
    var refresh = function () {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      fetch(window.location.href, { credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, 'text/html');
          parts.forEach(function (id) {
            var old = document.getElementById(id);
            var now = fresh.getElementById(id);
            if (old && now) {
              old.replaceWith(now);
              localTimes(now);
            }
          });
          if (after) {
            after();
          }
        })
        .catch(function () {})
        .then(function () {
          busy = false;
          if (again) {
            again = false;
            refresh();
          }
        });
    };
    // From the newest event when the page was rendered: nothing between
    // the rendering and the stream is missed. Unfiltered (the server refuses
    // names it does not know); only `names` are listened to.
    var stream = new EventSource('/api/v1/events?after=' + encodeURIComponent(from.getAttribute('data-after')));
    names.forEach(function (name) {
      stream.addEventListener(name, function (e) {
        var body = JSON.parse(e.data);
        if (wanted(body)) {
          refresh();
        }
      });
    });
    window.addEventListener('pagehide', function () { stream.close(); });
  };
  var messageEvents = ['message.received', 'message.sent', 'message.status', 'message.reaction',
    'message.edited', 'message.deleted'];

  // Inbox: a new message appears and the tab counts change; ticked boxes
  // stay ticked.
  var listing = document.getElementById('listing');
  if (listing) {
    var ticked = function () {
      return [].slice.call(document.querySelectorAll('input[name="id"]:checked')).map(function (b) {
        return b.value;
      });
    };
    var keep = [];
    live(listing, messageEvents, function () {
      keep = ticked();
      return true;
    }, ['tabs', 'listing'], function () {
      keep.forEach(function (id) {
        var box = document.getElementById('sel-' + id);
        if (box) {
          box.checked = true;
        }
      });
      selectAll();
    });
  }

  // Conversation (its newest page): new messages, reactions, edits,
  // deletions and ticks of this chat appear; the reply being typed stays.
  var chat = document.getElementById('chat');
  if (chat && chat.hasAttribute('data-after')) {
    var phone = chat.getAttribute('data-phone');
    live(chat, messageEvents, function (body) {
      return body.data && body.data.phone === phone;
    }, ['chat', 'chat-sub'], function () {
      var last = document.querySelector('#chat > li:last-child');
      if (last) {
        last.scrollIntoView({ block: 'nearest' });
      }
    });
  }

  // Pairing: once the phone is linked (or the connection changes), the page
  // shows it without a reload by hand.
  var pairing = document.getElementById('pairing');
  if (pairing) {
    live(pairing, ['connection.connected', 'connection.disconnected'], function () {
      window.location.reload();
      return false;
    }, []);
  }

  // Pairing: the QR code rotates, so the image is fetched again every few
  // seconds. Only the image changes; the page is never reloaded.
  var qr = document.getElementById('qr');
  if (qr) {
    var src = qr.getAttribute('data-src');
    window.setInterval(function () {
      qr.src = src + '?t=' + Date.now();
    }, 3000);
  }
})();
